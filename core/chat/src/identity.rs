//! Anonymous identities: a pleasant display name and a unique-looking tag, made from
//! randomness the caller supplies (core has no source of its own).

use crate::model::Identity;
use rand_core::RngCore;

/// Display names are one of these words and a number from 1 to 99, e.g. `Wren42`.
/// Short, friendly, and none of them means anything about the person.
const WORDS: &[&str] = &[
    // Birds.
    "Wren", "Robin", "Finch", "Heron", "Swift", "Lark", "Kestrel", "Plover", "Tern", "Magpie",
    "Starling", "Sparrow", "Warbler", "Osprey", "Puffin", "Curlew", "Dunlin", "Egret", "Falcon",
    "Ibis", "Jay", "Kite", "Linnet", "Merlin", "Oriole", "Pipit", "Raven", "Siskin", "Thrush",
    "Owl", // Trees.
    "Alder", "Aspen", "Birch", "Cedar", "Elm", "Hazel", "Holly", "Juniper", "Larch", "Linden",
    "Maple", "Oak", "Pine", "Rowan", "Spruce", "Willow", "Yew", "Cypress", "Hawthorn", "Poplar",
    // Stars and the sky.
    "Vega", "Sirius", "Altair", "Deneb", "Rigel", "Polaris", "Lyra", "Orion", "Capella", "Mira",
    "Nova", "Comet", "Aurora", "Nebula", "Zenith", "Quasar", "Pulsar", "Meteor", "Eclipse", "Halo",
    // Water, stone and weather.
    "River", "Brook", "Delta", "Fjord", "Harbor", "Lagoon", "Tide", "Reef", "Cove", "Glacier",
    "Amber", "Basalt", "Coral", "Flint", "Garnet", "Jade", "Opal", "Quartz", "Slate", "Topaz",
    "Breeze", "Cloud", "Frost", "Mist", "Rain", "Storm", "Thunder", "Zephyr", "Ember", "Dawn",
];

/// Length of the hex part of a name tag.
const TAG_HEX_DIGITS: usize = 6;

/// Longest display name accepted from a token (ours are far shorter; this only bounds what a
/// forged-but-well-signed token from an older release could carry).
const MAX_RAND_ID_CHARS: usize = 64;

impl Identity {
    /// A fresh identity: a word from the built-in list plus 1-99 (`Wren42`) and a tag of `#`
    /// and 6 upper-case hex digits (`#A1B2C3`).
    pub fn generate(rng: &mut impl RngCore) -> Identity {
        // Modulo bias over a u32 is far below anything a person could notice in a name.
        let word = WORDS[rng.next_u32() as usize % WORDS.len()];
        let number = rng.next_u32() % 99 + 1;
        let tag = rng.next_u32() & 0x00FF_FFFF;
        Identity {
            rand_id: format!("{word}{number}"),
            name_tag: format!("#{tag:06X}"),
        }
    }

    /// An identity read back from a token: `None` unless the tag is `#` and 6 upper-case hex
    /// digits and the name is non-empty and at most 64 characters.
    pub fn from_parts(rand_id: String, name_tag: String) -> Option<Identity> {
        let name_ok = !rand_id.trim().is_empty() && rand_id.chars().count() <= MAX_RAND_ID_CHARS;
        (name_ok && is_valid_name_tag(&name_tag)).then_some(Identity { rand_id, name_tag })
    }
}

/// True for `#` followed by exactly 6 upper-case hex digits.
pub fn is_valid_name_tag(tag: &str) -> bool {
    tag.strip_prefix('#').is_some_and(|hex| {
        hex.len() == TAG_HEX_DIGITS
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha12Rng;
    use rand_core::SeedableRng;

    #[test]
    fn word_list_is_about_a_hundred_distinct_words() {
        let mut words = WORDS.to_vec();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), WORDS.len(), "duplicate words");
        assert!((90..=120).contains(&WORDS.len()));
    }

    #[test]
    fn generated_identities_have_the_contract_format() {
        let mut rng = ChaCha12Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let identity = Identity::generate(&mut rng);
            assert!(is_valid_name_tag(&identity.name_tag), "{identity:?}");
            let digits_at = identity
                .rand_id
                .find(|c: char| c.is_ascii_digit())
                .expect("a number follows the word");
            let (word, number) = identity.rand_id.split_at(digits_at);
            assert!(WORDS.contains(&word), "{identity:?}");
            let number: u32 = number.parse().expect("number");
            assert!((1..=99).contains(&number), "{identity:?}");
        }
    }

    #[test]
    fn generation_is_deterministic_for_a_seed() {
        let a = Identity::generate(&mut ChaCha12Rng::seed_from_u64(1));
        let b = Identity::generate(&mut ChaCha12Rng::seed_from_u64(1));
        assert_eq!(a, b);
    }

    #[test]
    fn name_tags_are_checked_strictly() {
        assert!(is_valid_name_tag("#A1B2C3"));
        assert!(is_valid_name_tag("#000000"));
        for bad in [
            "",
            "#",
            "A1B2C3",
            "#a1b2c3",
            "#A1B2C",
            "#A1B2C3D",
            "#G00000",
            "＃A1B2C3",
        ] {
            assert!(!is_valid_name_tag(bad), "{bad}");
        }
    }

    #[test]
    fn from_parts_validates_both_fields() {
        assert!(Identity::from_parts("Wren42".into(), "#ABCDEF".into()).is_some());
        assert!(Identity::from_parts("".into(), "#ABCDEF".into()).is_none());
        assert!(Identity::from_parts("   ".into(), "#ABCDEF".into()).is_none());
        assert!(Identity::from_parts("x".repeat(65), "#ABCDEF".into()).is_none());
        assert!(Identity::from_parts("Wren42".into(), "#abcdef".into()).is_none());
    }
}
