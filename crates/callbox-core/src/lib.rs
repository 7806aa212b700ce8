//! # callbox-core
//!
//! The wire formats of Callbox, with no I/O and no async runtime: every function takes the current time and
//! the secrets it needs as parameters, so it can be tested, fuzzed and benchmarked in isolation.
//!
//! Main types:
//! - [`Secret`]: a base64-decoded application or session secret, keying HMAC-SHA256; redacted `Debug`.
//! - [`ticket`]: legacy user tickets (PROTOCOL §2): [`ticket::mint`] reproduces the published Node generator
//!   byte for byte; [`ticket::DecodedTicket`] verifies every generator variant.
//! - [`jwt`]: registration JWTs (PROTOCOL §3) with the `hkdfv1-YYYYMMDD` signing-key derivation.
//! - [`AnyTicket`] and [`diagnose`]: either format behind one type, and the step-by-step checks that the
//!   ticket debugger shows.
//! - [`signing`]: signed requests (PROTOCOL §4): StringToSign, sign, verify with a timestamp window.
//! - [`authorization`]: the `Authorization` header schemes (PROTOCOL §5).
//! - [`Reason`]: the stable refusal words and legacy error codes of PROTOCOL §7. Every error type here maps to
//!   one through its `reason()` method.
//! - [`Capability`]: what a session may do, and the legacy service names (`im`, `voip`, ...) that ask for it.
//! - [`legacy`]: the legacy SDK's MXP frames (split, parse) and their AES-256-CBC encryption.
//! - [`turn`]: TURN credentials in coturn's shared-secret mode (HMAC-SHA1 over `expiry:user`).
//! - [`TicketPolicy`]: an application's default and maximum ticket lifetime and allowed clock skew.

// Unit tests may unwrap; the library itself may not (workspace lints).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod any_ticket;
pub mod authorization;
pub mod capability;
pub mod credential;
pub mod jwt;
pub mod legacy;
pub mod reason;
pub mod secret;
pub mod signing;
pub mod ticket;
pub mod time;
pub mod turn;

pub use any_ticket::{diagnose, AnyTicket, Check, Diagnosis, TicketFormat, VerifiedCredential};
pub use authorization::{Authorization, AuthorizationError};
pub use capability::Capability;
pub use credential::{is_valid_user_id, Identity, IdentityType, TicketError, TicketPolicy};
pub use reason::Reason;
pub use secret::{fingerprint, Secret, SecretError};
pub use signing::{SignatureError, SignedParts};
