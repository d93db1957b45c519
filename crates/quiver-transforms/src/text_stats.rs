//! Text statistics: the scalar functions behind `text_length`, `word_count`, `avg_word_length`,
//! `digit_count`, `exclamation_count`, `uppercase_ratio`, `normalize_text`, `keyword_count` and
//! `has_keyword`.
//!
//! Definitions used throughout: a *character* is a Unicode scalar value (a Rust `char`);
//! *whitespace* is Unicode `White_Space` (`char::is_whitespace`); a *word* is a maximal run of
//! non-whitespace characters; a *letter* is `char::is_alphabetic`.

/// `text_length(s)`: the number of Unicode scalar values (not bytes, not graphemes).
pub fn text_length(s: &str) -> i64 {
    s.chars().count() as i64
}

/// `word_count(s)`: the number of whitespace-separated words. `word_count('Hi  there!') = 2`.
pub fn word_count(s: &str) -> i64 {
    s.split_whitespace().count() as i64
}

/// `avg_word_length(s)`: non-whitespace characters divided by words; 0.0 when there is no word.
pub fn avg_word_length(s: &str) -> f64 {
    let (mut chars, mut words, mut in_word) = (0u64, 0u64, false);
    for c in s.chars() {
        if c.is_whitespace() {
            in_word = false;
        } else {
            chars += 1;
            if !in_word {
                words += 1;
                in_word = true;
            }
        }
    }
    if words == 0 {
        0.0
    } else {
        chars as f64 / words as f64
    }
}

/// `digit_count(s)`: the number of ASCII digits `0`..=`9` (other scripts' digits are not counted).
pub fn digit_count(s: &str) -> i64 {
    s.bytes().filter(u8::is_ascii_digit).count() as i64
}

/// `exclamation_count(s)`: the number of `!` (U+0021; the full-width `！` is not counted).
pub fn exclamation_count(s: &str) -> i64 {
    s.bytes().filter(|b| *b == b'!').count() as i64
}

/// `uppercase_ratio(s)`: uppercase letters divided by letters; 0.0 when there is no letter.
///
/// Letters are `char::is_alphabetic`; uppercase ones are those that are also `char::is_uppercase`.
pub fn uppercase_ratio(s: &str) -> f64 {
    let (mut letters, mut upper) = (0u64, 0u64);
    for c in s.chars() {
        if c.is_alphabetic() {
            letters += 1;
            if c.is_uppercase() {
                upper += 1;
            }
        }
    }
    if letters == 0 {
        0.0
    } else {
        upper as f64 / letters as f64
    }
}

/// Whether `normalize_text` turns `c` into a space: ASCII punctuation, the Latin-1 marks
/// `¡ « · » ¿`, General Punctuation U+2010..=U+2027 and U+2030..=U+205E (dashes, curly quotes,
/// ellipsis, ...), and CJK punctuation U+3001..=U+3003, U+3008..=U+3011.
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c,
            '\u{A1}' | '\u{AB}' | '\u{B7}' | '\u{BB}' | '\u{BF}'
            | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}'
            | '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3011}')
}

/// `normalize_text(s)`: lowercase (`char::to_lowercase`), punctuation ([`is_punctuation`]) to a
/// space, runs of whitespace collapsed to one ASCII space, leading and trailing space trimmed.
/// Writes into `out` (cleared first) so a caller can reuse the buffer.
///
/// `normalize_text("  Hello,   WORLD!! ") = "hello world"`; `"don't"` becomes `"don t"`.
pub fn normalize_text_into(s: &str, out: &mut String) {
    out.clear();
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() || is_punctuation(c) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// [`normalize_text_into`] returning a new string.
pub fn normalize_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    normalize_text_into(s, &mut out);
    out
}

/// A parsed keyword list for `keyword_count` / `has_keyword`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    words: Vec<String>,
}

impl Keywords {
    /// Parses `'free,win,prize'`: entries are split on `,` and each is normalized with
    /// [`normalize_text`]; entries that normalize to nothing are skipped. It is an error for an
    /// entry to normalize to more than one word (a phrase can never equal one word), or for the
    /// list to hold no keyword at all.
    pub fn parse(list: &str) -> Result<Keywords, String> {
        let mut words = Vec::new();
        for entry in list.split(',') {
            let w = normalize_text(entry);
            if w.is_empty() {
                continue;
            }
            if w.contains(' ') {
                return Err(format!(
                    "keyword '{}' normalizes to several words ('{w}'); keywords are single words",
                    entry.trim()
                ));
            }
            if !words.contains(&w) {
                words.push(w);
            }
        }
        if words.is_empty() {
            return Err(format!("the keyword list '{list}' holds no keyword"));
        }
        Ok(Keywords { words })
    }

    /// The normalized keywords, without duplicates, in list order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// `keyword_count(s, list)`: how many words of `normalize_text(s)` are keywords, counting
    /// repeats (`keyword_count('Win, WIN! free', 'free,win') = 3`). `scratch` is a reusable buffer.
    pub fn count(&self, s: &str, scratch: &mut String) -> i64 {
        normalize_text_into(s, scratch);
        scratch
            .split(' ')
            .filter(|w| self.words.iter().any(|k| k == w))
            .count() as i64
    }

    /// `has_keyword(s, list)`: whether [`Keywords::count`] is above zero.
    pub fn any(&self, s: &str, scratch: &mut String) -> bool {
        normalize_text_into(s, scratch);
        scratch
            .split(' ')
            .any(|w| self.words.iter().any(|k| k == w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_values() {
        assert_eq!(text_length("héllo 👋"), 7);
        assert_eq!(word_count("Hi  there!"), 2);
        assert_eq!(word_count(" \t\n"), 0);
        assert_eq!(avg_word_length("Hi  there!"), 4.0);
        assert_eq!(avg_word_length("   "), 0.0);
        assert_eq!(digit_count("call 0800 123"), 7);
        assert_eq!(exclamation_count("win!! now!"), 3);
        assert_eq!(uppercase_ratio("FREE prize"), 4.0 / 9.0);
        assert_eq!(uppercase_ratio("123 !!"), 0.0);
        assert_eq!(normalize_text("  Hello,   WORLD!! "), "hello world");
        assert_eq!(normalize_text("don't—stop…"), "don t stop");
        assert_eq!(normalize_text("!!!"), "");
        let k = Keywords::parse("free, Win ,prize,,").unwrap();
        assert_eq!(k.words(), ["free", "win", "prize"]);
        let mut buf = String::new();
        assert_eq!(k.count("WIN a FREE prize, win!", &mut buf), 4);
        assert!(!k.any("nothing here", &mut buf));
        assert!(Keywords::parse(" , ").is_err());
        assert!(Keywords::parse("free prize").is_err());
    }
}
