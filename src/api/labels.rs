//! Names for sessions: `adjective-animal-NNNN` labels that people type.

const ADJECTIVES: &[&str] = &[
    "agile", "amber", "bold", "brave", "bright", "brisk", "calm", "clever", "cosmic", "crisp",
    "daring", "eager", "fancy", "fearless", "gentle", "glad", "golden", "happy", "jolly", "keen",
    "kind", "lively", "lucky", "mellow", "merry", "mighty", "nimble", "noble", "polite", "proud",
    "quick", "quiet", "rapid", "sharp", "shiny", "silent", "sleek", "smart", "snappy", "steady",
    "sunny", "swift", "tidy", "witty", "zesty",
];

const ANIMALS: &[&str] = &[
    "badger", "bear", "beaver", "bison", "cat", "cheetah", "cobra", "crane", "crow", "deer",
    "dolphin", "eagle", "falcon", "ferret", "fox", "gecko", "heron", "ibis", "jaguar", "koala",
    "lemur", "lion", "lynx", "marmot", "moose", "newt", "otter", "owl", "panda", "panther",
    "puffin", "quail", "rabbit", "raven", "seal", "shark", "sloth", "stork", "tiger", "toucan",
    "walrus", "whale", "wolf", "yak", "zebra",
];

/// A fresh label that `taken` does not reject. With about twenty million labels, a clash
/// is rare; after many in a row the number grows a digit rather than loop forever.
pub(super) fn generate(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let n = crate::random::u64();
        let adjective = ADJECTIVES[(n % ADJECTIVES.len() as u64) as usize];
        let animal = ANIMALS[((n >> 16) % ANIMALS.len() as u64) as usize];
        let number = (n >> 32) % if attempt < 100 { 10_000 } else { 100_000 };
        let label = if attempt < 100 {
            format!("{adjective}-{animal}-{number:04}")
        } else {
            format!("{adjective}-{animal}-{number:05}")
        };
        if !taken(&label) {
            return label;
        }
    }
    unreachable!("the loop above only ends by returning")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn well_formed(label: &str) -> bool {
        let parts: Vec<&str> = label.split('-').collect();
        parts.len() == 3
            && parts[..2]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[2].len() == 4
            && parts[2].bytes().all(|b| b.is_ascii_digit())
    }

    #[test]
    fn labels_look_right() {
        for _ in 0..1000 {
            let label = generate(|_| false);
            assert!(well_formed(&label), "{label}");
        }
        for word in ADJECTIVES.iter().chain(ANIMALS) {
            assert!(word.bytes().all(|b| b.is_ascii_lowercase()), "{word}");
        }
    }

    #[test]
    fn taken_labels_are_skipped() {
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let label = generate(|l| seen.contains(l));
            assert!(seen.insert(label));
        }
        let first = generate(|_| false);
        let other = generate(|l| l == first);
        assert_ne!(first, other);
    }
}
