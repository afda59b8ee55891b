//! `scorer`: a Rust guest of the `moderation` world from `examples/custom-world`, a world
//! defined outside witplug. It scores a message for blocked and shouted words, asking
//! the host's `wordlist` which words are blocked.

wit_bindgen::generate!({ path: "../../examples/custom-world/wit", world: "moderation" });

use acme::moderation::wordlist;
use exports::acme::moderation::scorer::{Guest, Verdict};

/// Points for each blocked word.
const BLOCKED_POINTS: u32 = 10;
/// Points for each shouted word.
const SHOUTED_POINTS: u32 = 1;

struct Scorer;

impl Guest for Scorer {
    fn score(message: String) -> Verdict {
        score_with(&message, wordlist::is_blocked)
    }
}

/// The scoring rule, with the blocklist passed in so that it is testable natively.
fn score_with(message: &str, is_blocked: impl Fn(&str) -> bool) -> Verdict {
    let mut verdict = Verdict {
        score: 0,
        flagged: Vec::new(),
    };
    for word in message.split_whitespace() {
        let word = word.trim_matches(|c: char| c.is_ascii_punctuation());
        if word.is_empty() {
            continue;
        }
        let lowercase = word.to_lowercase();
        if is_blocked(&lowercase) {
            verdict.score = verdict.score.saturating_add(BLOCKED_POINTS);
            verdict.flagged.push(lowercase);
        } else if is_shouted(word) {
            verdict.score = verdict.score.saturating_add(SHOUTED_POINTS);
        }
    }
    verdict
}

/// Two or more ASCII capitals and nothing else, e.g. `NOW` but not `I` or `NOW2`.
fn is_shouted(word: &str) -> bool {
    word.len() >= 2 && word.bytes().all(|b| b.is_ascii_uppercase())
}

export!(Scorer);

#[cfg(test)]
mod tests {
    use super::*;

    fn score(message: &str) -> (u32, Vec<String>) {
        let verdict = score_with(message, |word| matches!(word, "spam" | "scam"));
        (verdict.score, verdict.flagged)
    }

    #[test]
    fn scores_blocked_and_shouted_words() {
        assert_eq!(
            score("Buy SPAM now, \"scam!\" FREE OK\u{3000}I A1 ..."),
            (22, vec!["spam".to_owned(), "scam".to_owned()])
        );
    }

    #[test]
    fn clean_message_scores_zero() {
        assert_eq!(score("  hello,\tworld  "), (0, vec![]));
        assert_eq!(score(""), (0, vec![]));
    }

    #[test]
    fn shouting_needs_two_ascii_capitals_only() {
        assert!(is_shouted("NO"));
        assert!(!is_shouted("N"));
        assert!(!is_shouted("NO2"));
        assert!(!is_shouted("ÉTÉ"));
        assert!(!is_shouted("No"));
    }
}
