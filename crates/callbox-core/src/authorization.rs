//! `Authorization` header schemes (PROTOCOL §5). Scheme names are matched ignoring ASCII case, because legacy
//! clients send them in lower case.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;
use zeroize::Zeroizing;

/// Longest `Authorization` header accepted (a maximal ticket plus the scheme).
pub const MAX_AUTHORIZATION_BYTES: usize = crate::ticket::MAX_TICKET_BYTES + 64;

/// A parsed `Authorization` header. Borrowed parts point into the header value.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization<'a> {
    /// `Application <key>`: a browser's public call.
    Application {
        /// The application key.
        key: &'a str,
    },
    /// `Application <key>:<signature>`: a backend's call signed with the application secret.
    ApplicationSigned {
        /// The application key.
        key: &'a str,
        /// Base64 request signature.
        signature: &'a str,
    },
    /// `Basic base64(<key>:<secret>)` or `Basic base64(application\<key>:<secret>)`.
    Basic {
        /// The application key.
        key: String,
        /// The application secret, as sent (base64 text).
        secret: Zeroizing<String>,
    },
    /// `User <userTicket>`: a legacy ticket to exchange for a session.
    User {
        /// The ticket.
        ticket: &'a str,
    },
    /// `Bearer <jwt>`: a registration JWT to exchange for a session.
    Bearer {
        /// The JWT.
        jwt: &'a str,
    },
    /// `Instance <instanceId>:<signature>`: a session's signed call.
    Instance {
        /// The session (instance) id.
        instance_id: &'a str,
        /// Base64 request signature.
        signature: &'a str,
    },
}

impl Authorization<'_> {
    /// The scheme name as Callbox writes it.
    pub const fn scheme(&self) -> &'static str {
        match self {
            Authorization::Application { .. } | Authorization::ApplicationSigned { .. } => "Application",
            Authorization::Basic { .. } => "Basic",
            Authorization::User { .. } => "User",
            Authorization::Bearer { .. } => "Bearer",
            Authorization::Instance { .. } => "Instance",
        }
    }
}

impl fmt::Debug for Authorization<'_> {
    /// Shows the scheme and public identifiers; never a ticket, JWT, secret or signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct(self.scheme());
        match self {
            Authorization::Application { key } | Authorization::ApplicationSigned { key, .. } => out.field("key", key),
            Authorization::Basic { key, .. } => out.field("key", key),
            Authorization::Instance { instance_id, .. } => out.field("instance_id", instance_id),
            Authorization::User { .. } | Authorization::Bearer { .. } => &mut out,
        };
        out.finish_non_exhaustive()
    }
}

/// Why an `Authorization` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// Empty header.
    #[error("the Authorization header is empty")]
    Empty,
    /// Over [`MAX_AUTHORIZATION_BYTES`].
    #[error("the Authorization header is too large")]
    TooLarge,
    /// A scheme Callbox does not know.
    #[error("unknown Authorization scheme")]
    UnknownScheme,
    /// A known scheme whose credentials do not parse.
    #[error("malformed {0} credentials")]
    Malformed(&'static str),
}

impl AuthorizationError {
    /// The PROTOCOL §7 reason word.
    pub const fn reason(&self) -> crate::Reason {
        match self {
            AuthorizationError::Empty => crate::Reason::MissingAuthorization,
            AuthorizationError::TooLarge => crate::Reason::PayloadTooLarge,
            AuthorizationError::UnknownScheme | AuthorizationError::Malformed(_) => {
                crate::Reason::MalformedAuthorization
            }
        }
    }
}

fn non_empty_token(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Parses a header value.
pub fn parse(header: &str) -> Result<Authorization<'_>, AuthorizationError> {
    if header.len() > MAX_AUTHORIZATION_BYTES {
        return Err(AuthorizationError::TooLarge);
    }
    let header = header.trim();
    if header.is_empty() {
        return Err(AuthorizationError::Empty);
    }
    let (scheme, credentials) = header.split_once(' ').ok_or(AuthorizationError::Malformed("scheme without"))?;
    let credentials = credentials.trim_start();
    let is = |name: &str| scheme.eq_ignore_ascii_case(name);
    if is("Application") {
        match credentials.split_once(':') {
            None if non_empty_token(credentials) => Ok(Authorization::Application { key: credentials }),
            Some((key, signature)) if non_empty_token(key) && non_empty_token(signature) => {
                Ok(Authorization::ApplicationSigned { key, signature })
            }
            _ => Err(AuthorizationError::Malformed("Application")),
        }
    } else if is("Basic") {
        parse_basic(credentials)
    } else if is("User") {
        if non_empty_token(credentials) {
            Ok(Authorization::User { ticket: credentials })
        } else {
            Err(AuthorizationError::Malformed("User"))
        }
    } else if is("Bearer") {
        if non_empty_token(credentials) {
            Ok(Authorization::Bearer { jwt: credentials })
        } else {
            Err(AuthorizationError::Malformed("Bearer"))
        }
    } else if is("Instance") {
        match credentials.split_once(':') {
            Some((instance_id, signature)) if non_empty_token(instance_id) && non_empty_token(signature) => {
                Ok(Authorization::Instance { instance_id, signature })
            }
            _ => Err(AuthorizationError::Malformed("Instance")),
        }
    } else {
        Err(AuthorizationError::UnknownScheme)
    }
}

fn parse_basic(credentials: &str) -> Result<Authorization<'static>, AuthorizationError> {
    let malformed = AuthorizationError::Malformed("Basic");
    let decoded = Zeroizing::new(STANDARD.decode(credentials).map_err(|_| malformed)?);
    let text = std::str::from_utf8(&decoded).map_err(|_| malformed)?;
    let (user, secret) = text.split_once(':').ok_or(malformed)?;
    let key = user.strip_prefix("application\\").unwrap_or(user);
    if !non_empty_token(key) || secret.is_empty() {
        return Err(malformed);
    }
    Ok(Authorization::Basic { key: key.to_owned(), secret: Zeroizing::new(secret.to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_parses_in_any_case() {
        assert_eq!(parse("Application abc"), Ok(Authorization::Application { key: "abc" }));
        assert_eq!(parse("application abc"), Ok(Authorization::Application { key: "abc" }));
        assert_eq!(
            parse("APPLICATION abc:c2ln"),
            Ok(Authorization::ApplicationSigned { key: "abc", signature: "c2ln" })
        );
        assert_eq!(parse("user a:b"), Ok(Authorization::User { ticket: "a:b" }));
        assert_eq!(parse("Bearer x.y.z"), Ok(Authorization::Bearer { jwt: "x.y.z" }));
        assert_eq!(parse("instance id1:sig"), Ok(Authorization::Instance { instance_id: "id1", signature: "sig" }));
        let basic = STANDARD.encode("key1:c2VjcmV0");
        assert_eq!(
            parse(&format!("Basic {basic}")),
            Ok(Authorization::Basic { key: "key1".into(), secret: Zeroizing::new("c2VjcmV0".into()) })
        );
        let basic = STANDARD.encode("application\\key1:c2VjcmV0");
        assert!(matches!(parse(&format!("basic {basic}")), Ok(Authorization::Basic { key, .. }) if key == "key1"));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(""), Err(AuthorizationError::Empty));
        assert_eq!(parse("   "), Err(AuthorizationError::Empty));
        assert_eq!(parse("Digest x"), Err(AuthorizationError::UnknownScheme));
        assert_eq!(parse("Instance"), Err(AuthorizationError::Malformed("scheme without")));
        assert_eq!(parse("Instance id-only"), Err(AuthorizationError::Malformed("Instance")));
        assert_eq!(parse("Instance :sig"), Err(AuthorizationError::Malformed("Instance")));
        assert_eq!(parse("Application a:"), Err(AuthorizationError::Malformed("Application")));
        assert_eq!(parse("Basic !!!"), Err(AuthorizationError::Malformed("Basic")));
        assert_eq!(
            parse(&format!("Basic {}", STANDARD.encode("nocolon"))),
            Err(AuthorizationError::Malformed("Basic"))
        );
        assert_eq!(parse(&format!("User {}", "a".repeat(MAX_AUTHORIZATION_BYTES))), Err(AuthorizationError::TooLarge));
    }

    #[test]
    fn debug_hides_credentials() {
        let shown = format!("{:?}", parse("Instance id1:c2lnbmF0dXJl").unwrap());
        assert!(shown.contains("id1") && !shown.contains("c2lnbmF0dXJl"));
        let shown = format!("{:?}", parse("User dGlja2V0:c2ln").unwrap());
        assert!(!shown.contains("dGlja2V0"));
        let basic = STANDARD.encode("key1:topsecretvalue");
        let shown = format!("{:?}", parse(&format!("Basic {basic}")).unwrap());
        assert!(!shown.contains("topsecretvalue"));
    }
}
