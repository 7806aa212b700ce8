//! `callbox app`, `callbox user`, `callbox session`, `callbox call`: a client of the admin HTTP API (docs/admin-api.md).
//!
//! - [`args`]: the command line, and how options become request bodies.
//! - [`client`]: the authenticated HTTP client and its errors.
//! - [`output`]: tables and settings for people, JSON for `--json`.
//!
//! Requests and answers are the callbox-wire types the server itself renders. `--json` prints the answer as the
//! server sent it; the text mode reads it typed.

mod args;
mod client;
mod output;

pub use args::{AppArgs, CallArgs, SessionArgs, UserArgs};
// For the other admin-API commands (`callbox connection`, realtime_cli.rs).
pub(crate) use args::Connection;
pub(crate) use client::Client;

use crate::usage;
use args::{AppCommand, CallCommand, SessionCommand, UserCommand, UserTarget};
use callbox_wire::admin::{
    AddUserBody, AppList, AppView, CallList, CreateAppBody, CreatedApp, NewSecret, PasswordBody, RevokeBody, Revoked,
    SessionList, UserList, UserView,
};
pub(crate) use client::{app_path, segment};
use client::{calls_path, user_path, Answer};
use output::{call_row, list_cell, on_off, print_app, print_user_line, user_status, CALL_HEADERS};
pub(crate) use output::{print_json, print_table};
use reqwest::Method;
use serde_json::{json, Value};
use std::process::ExitCode;

/// Runs a `callbox app` subcommand.
pub async fn run_app(args: AppArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        AppCommand::Create { name, settings } => {
            let body = CreateAppBody { name, settings: settings.into_patch(None) };
            let answer = client.send(Method::POST, "/apps", &body).await?;
            let created: CreatedApp = answer.typed()?;
            if json_out {
                print_json(&flat_created_app(answer.json()))?;
            } else {
                println!("Created application {}", created.application.name);
                println!("  application key:    {}", created.application.application_key);
                println!("  application secret: {}", created.application_secret.expose());
                println!("  secret id:          {}", created.secret_id);
                println!("The secret is shown this once: put it in your backend's configuration now.");
            }
            output::warn_platform_user_auth(&created.application);
        }
        AppCommand::List => {
            let answer = client.get("/apps", &[]).await?;
            if json_out {
                return print_json(answer.json()).map(|()| ExitCode::SUCCESS);
            }
            let list: AppList = answer.typed()?;
            let rows: Vec<Vec<String>> = list
                .applications
                .iter()
                .map(|app| {
                    vec![
                        app.application_key.clone(),
                        app.name.clone(),
                        on_off(app.platform_user_auth),
                        app.secrets.len().to_string(),
                        app.created_at.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No applications yet: create one with callbox app create --name NAME");
            } else {
                print_table(&["KEY", "NAME", "PLATFORM USERS", "SECRETS", "CREATED"], &rows);
            }
        }
        AppCommand::Show { key } => {
            let answer = client.get(&app_path(&key)?, &[]).await?;
            if json_out {
                print_json(answer.json())?;
            } else {
                print_app(&answer.typed::<AppView>()?);
            }
        }
        AppCommand::Set { key, name, settings } => {
            let path = app_path(&key)?;
            let answer = client.send(Method::PATCH, &path, &settings.into_patch(name)).await?;
            if json_out {
                print_json(answer.json())?;
            } else {
                let app: AppView = answer.typed()?;
                println!("Updated application {key}:");
                print_app(&app);
            }
        }
        AppCommand::RotateSecret { key } => {
            let path = format!("{}/secrets", app_path(&key)?);
            let answer = client.send(Method::POST, &path, &json!({})).await?;
            if json_out {
                print_json(answer.json())?;
            } else {
                let secret: NewSecret = answer.typed()?;
                println!("New secret {} for application {key}", secret.secret_id);
                println!("  application secret: {}", secret.application_secret.expose());
                println!("It signs from now on and is shown this once; every active secret still verifies.");
                println!("Once your backend uses it, retire the old one (callbox app show {key} lists them):");
                println!("  callbox app retire-secret {key} OLD_SECRET_ID");
            }
        }
        AppCommand::RetireSecret { key, secret_id } => {
            let path = format!("{}/secrets/{}", app_path(&key)?, segment("secret id", &secret_id)?);
            finish_empty(client.delete(&path).await?, json_out, || {
                format!("Retired secret {secret_id} of application {key}: tickets signed with it are now refused.")
            })?;
        }
        AppCommand::Delete { key } => {
            let path = app_path(&key)?;
            finish_empty(client.delete(&path).await?, json_out, || {
                format!("Deleted application {key} with its users, secrets and sessions.")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--json` form of `app create` (as its help says): the application object with `applicationSecret` and
/// `secretId` added, so scripts read one flat object.
fn flat_created_app(answer: &Value) -> Value {
    let mut flat = answer.get("application").and_then(Value::as_object).cloned().unwrap_or_default();
    for name in ["applicationSecret", "secretId"] {
        if let Some(value) = answer.get(name) {
            flat.insert(name.into(), value.clone());
        }
    }
    Value::Object(flat)
}

/// Ends a command whose answer is normally empty: prints `done` in text mode, any body the server did send in
/// JSON mode.
fn finish_empty(answer: Option<Answer>, json_out: bool, done: impl FnOnce() -> String) -> anyhow::Result<()> {
    match answer {
        Some(body) if json_out => print_json(body.json()),
        _ if json_out => Ok(()),
        _ => {
            println!("{}", done());
            Ok(())
        }
    }
}

/// Prints a user answer: as sent with `--json`, else one line starting with `verb`.
fn finish_user(answer: &Answer, json_out: bool, verb: &str) -> anyhow::Result<()> {
    if json_out {
        return print_json(answer.json());
    }
    print_user_line(verb, &answer.typed::<UserView>()?);
    Ok(())
}

/// Runs a `callbox user` subcommand.
pub async fn run_user(args: UserArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        UserCommand::Add { app, user, password, identity_type } => {
            let path = format!("{}/users", app_path(&app)?);
            let body = AddUserBody {
                user_id: user,
                password: password.read()?,
                identity_type: identity_type.map(|kind| callbox_core::IdentityType::from(kind).as_str().to_owned()),
            };
            finish_user(&client.send(Method::POST, &path, &body).await?, json_out, "Added")?;
        }
        UserCommand::List { app, search, limit } => {
            let path = format!("{}/users", app_path(&app)?);
            let mut query = Vec::new();
            if let Some(search) = search {
                query.push(("search", search));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let answer = client.get(&path, &query).await?;
            if json_out {
                return print_json(answer.json()).map(|()| ExitCode::SUCCESS);
            }
            let list: UserList = answer.typed()?;
            let rows: Vec<Vec<String>> = list
                .users
                .iter()
                .map(|user| {
                    vec![
                        user.user_id.clone(),
                        user.identity_type.clone(),
                        user_status(user).to_owned(),
                        user.created_at.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No users.");
            } else {
                print_table(&["USER", "TYPE", "STATUS", "CREATED"], &rows);
            }
        }
        UserCommand::Disable(UserTarget { app, user }) => {
            let path = format!("{}/disable", user_path(&app, &user)?);
            finish_user(&client.send(Method::POST, &path, &json!({})).await?, json_out, "Disabled")?;
            if !json_out {
                println!("Their sessions were revoked.");
            }
        }
        UserCommand::Enable(UserTarget { app, user }) => {
            let path = format!("{}/enable", user_path(&app, &user)?);
            finish_user(&client.send(Method::POST, &path, &json!({})).await?, json_out, "Enabled")?;
        }
        UserCommand::Remove(UserTarget { app, user }) => {
            let path = user_path(&app, &user)?;
            finish_empty(client.delete(&path).await?, json_out, || {
                format!("Removed user {user} and revoked their sessions.")
            })?;
        }
        UserCommand::SetPassword { app, user, password } => {
            let path = format!("{}/password", user_path(&app, &user)?);
            let body = PasswordBody { password: password.read()? };
            finish_empty(client.call(Method::PUT, &path, &[], Some(&body)).await?, json_out, || {
                format!("Set the password of user {user}.")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `callbox session` subcommand.
pub async fn run_session(args: SessionArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        SessionCommand::List { app, user, limit } => {
            let path = format!("{}/sessions", app_path(&app)?);
            let mut query = Vec::new();
            if let Some(user) = user {
                query.push(("userId", user));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let answer = client.get(&path, &query).await?;
            if json_out {
                return print_json(answer.json()).map(|()| ExitCode::SUCCESS);
            }
            let list: SessionList = answer.typed()?;
            let rows: Vec<Vec<String>> = list
                .sessions
                .iter()
                .map(|session| {
                    vec![
                        session.id.clone(),
                        session.user_id.clone(),
                        list_cell(&session.capabilities),
                        session.created_at.clone(),
                        session.expires_at.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No live sessions.");
            } else {
                print_table(&["ID", "USER", "CAPABILITIES", "CREATED", "EXPIRES"], &rows);
            }
        }
        SessionCommand::Revoke { app, session_id, user, issued_before } => {
            let base = format!("{}/sessions", app_path(&app)?);
            if let Some(id) = session_id {
                let path = format!("{base}/{}", segment("session id", &id)?);
                finish_empty(client.delete(&path).await?, json_out, || format!("Revoked session {id}."))?;
                return Ok(ExitCode::SUCCESS);
            }
            let body = match (user, issued_before) {
                (Some(user), _) => RevokeBody { user_id: Some(user), issued_before: None },
                (None, Some(before)) => {
                    RevokeBody { user_id: None, issued_before: Some(callbox_core::time::format_iso_seconds(before)) }
                }
                (None, None) => return Err(usage("give a SESSION_ID, --user or --issued-before")),
            };
            let answer = client.send(Method::POST, &format!("{base}/revoke"), &body).await?;
            if json_out {
                print_json(answer.json())?;
            } else {
                println!("Revoked {} session(s).", answer.typed::<Revoked>()?.revoked);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `callbox call` subcommand.
pub async fn run_call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        CallCommand::List { app, user, limit } => {
            let mut query = Vec::new();
            if let Some(user) = &user {
                query.push(("user", user.clone()));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let answer = client.get(&calls_path(&app)?, &query).await?;
            if json_out {
                return print_json(answer.json()).map(|()| ExitCode::SUCCESS);
            }
            let list: CallList = answer.typed()?;
            let rows: Vec<Vec<String>> = list.calls.iter().map(call_row).collect();
            match (&user, rows.is_empty()) {
                (Some(user), true) => println!("No calls of {user}."),
                (None, true) => println!("No calls yet."),
                _ => print_table(&CALL_HEADERS, &rows),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
