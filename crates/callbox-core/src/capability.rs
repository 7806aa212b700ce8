//! What a session may do, and the legacy service names that ask for it.

use serde::{Deserialize, Serialize};

/// A session capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Instant messaging.
    Messaging,
    /// Voice calls.
    Calling,
    /// Video calls.
    Video,
}

impl Capability {
    /// All capabilities.
    pub const ALL: [Capability; 3] = [Capability::Messaging, Capability::Calling, Capability::Video];

    /// The wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Capability::Messaging => "messaging",
            Capability::Calling => "calling",
            Capability::Video => "video",
        }
    }

    /// Parses a wire word.
    pub fn parse(word: &str) -> Option<Self> {
        Capability::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// The capability a service name of `POST /v1/instance` asks for (PROTOCOL §6), case-insensitive: the legacy
    /// names (`im` → messaging; `voip`, `p2p`, `srtp` → calling) and the capability words themselves. Other
    /// names (`online`, unknown ones) ask for no capability.
    pub fn from_service_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "im" | "messaging" => Some(Capability::Messaging),
            "voip" | "p2p" | "srtp" | "calling" => Some(Capability::Calling),
            "video" => Some(Capability::Video),
            _ => None,
        }
    }

    /// Encodes a set as a comma-separated, sorted list (the storage form).
    pub fn join(set: &[Capability]) -> String {
        let mut sorted = set.to_vec();
        sorted.sort();
        sorted.dedup();
        sorted.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Decodes the storage form; unknown words are skipped.
    pub fn split(text: &str) -> Vec<Capability> {
        text.split(',').filter_map(Capability::parse).collect()
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Capability;

    #[test]
    fn legacy_service_names_map_to_capabilities() {
        assert_eq!(Capability::from_service_name("IM"), Some(Capability::Messaging));
        for name in ["voip", "p2p", "SRTP", "calling"] {
            assert_eq!(Capability::from_service_name(name), Some(Capability::Calling), "{name}");
        }
        assert_eq!(Capability::from_service_name("online"), None);
        assert_eq!(Capability::split(&Capability::join(&[Capability::Video, Capability::Messaging])).len(), 2);
    }
}
