//! VADER sentiment, ported line by line from the Python reference `vaderSentiment` 3.3.2.
//!
//! VADER (Hutto & Gilbert, ICWSM 2014) scores a text from a lexicon of word valences plus rules
//! for boosters ("very"), negations ("not", "n't"), "but", ALL-CAPS emphasis, "!" and "?", and a
//! few idioms. The lexicons are the reference's own files (MIT license, C.J. Hutto), embedded with
//! `include_str!` from `data/vader/` where their license notice sits beside them.
//!
//! The port keeps the reference's quirks on purpose, so that scores agree with Python to the
//! printed digit: the order-dependent re-weighting around "but" (the reference looks values up by
//! equality, not by position), tokens of two or fewer characters keeping their punctuation, and the
//! rounding of the result (`compound` to 4 decimals, `pos`/`neg`/`neu` to 3, correctly rounded
//! like Python's `round`). Splitting and stripping use Python's notion of whitespace (Unicode
//! `White_Space` plus U+001C..U+001F); lowercasing uses Rust's `str::to_lowercase`, which agrees
//! with Python's `str.lower` on everything but a handful of exotic code points.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The VADER scores of a text, as the reference `polarity_scores` returns them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polarity {
    /// Share of negative valence, in [0, 1], rounded to 3 decimals.
    pub neg: f64,
    /// Share of neutral words, in [0, 1], rounded to 3 decimals.
    pub neu: f64,
    /// Share of positive valence, in [0, 1], rounded to 3 decimals.
    pub pos: f64,
    /// Normalized sum of valences, in [-1, 1], rounded to 4 decimals.
    pub compound: f64,
}

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOSTERS_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
];

const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

static LEXICON_TXT: &str = include_str!("../data/vader/vader_lexicon.txt");
static EMOJI_TXT: &str = include_str!("../data/vader/emoji_utf8_lexicon.txt");

struct Lexicons {
    words: HashMap<&'static str, f64>,
    emoji: HashMap<char, &'static str>,
    boosters: HashMap<&'static str, f64>,
}

fn lexicons() -> &'static Lexicons {
    static LEX: OnceLock<Lexicons> = OnceLock::new();
    LEX.get_or_init(|| {
        // Like the reference: split on '\n', strip each line, take the first two tab fields;
        // a later duplicate wins.
        let mut words = HashMap::with_capacity(7600);
        for line in LEXICON_TXT.trim_end_matches('\n').split('\n') {
            let line = line.trim();
            let mut fields = line.split('\t');
            if let (Some(word), Some(measure)) = (fields.next(), fields.next())
                && let Ok(v) = measure.parse::<f64>()
            {
                words.insert(word, v);
            }
        }
        // Only single code points can ever match: the reference looks emoji up char by char.
        let mut emoji = HashMap::with_capacity(1300);
        for line in EMOJI_TXT.trim_end_matches('\n').split('\n') {
            let line = line.trim();
            let mut fields = line.split('\t');
            if let (Some(key), Some(desc)) = (fields.next(), fields.next()) {
                let mut chars = key.chars();
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    emoji.insert(c, desc);
                }
            }
        }
        let boosters = BOOSTERS_UP
            .iter()
            .map(|w| (*w, B_INCR))
            .chain(BOOSTERS_DOWN.iter().map(|w| (*w, B_DECR)))
            .collect();
        Lexicons {
            words,
            emoji,
            boosters,
        }
    })
}

/// Python's `str.isspace`: Unicode `White_Space` plus the ASCII separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.isupper`: at least one cased character and no lowercase or titlecase one.
fn is_py_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

fn is_titlecase(c: char) -> bool {
    matches!(c,
        '\u{01C5}' | '\u{01C8}' | '\u{01CB}' | '\u{01F2}'
        | '\u{1F88}'..='\u{1F8F}' | '\u{1F98}'..='\u{1F9F}' | '\u{1FA8}'..='\u{1FAF}'
        | '\u{1FBC}' | '\u{1FCC}' | '\u{1FFC}')
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else if s.is_ascii() {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// `SentiText._strip_punc_if_word`: strip ASCII punctuation from both ends unless that leaves
/// two characters or fewer (then the token is probably an emoticon and is kept whole).
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.chars().nth(2).is_none() {
        token
    } else {
        stripped
    }
}

fn negated(word_lower: &str) -> bool {
    NEGATE.contains(&word_lower) || word_lower.contains("n't")
}

fn scalar_inc_dec(
    lex: &Lexicons,
    word: &str,
    word_lower: &str,
    valence: f64,
    cap_diff: bool,
) -> f64 {
    let mut scalar = 0.0;
    if let Some(&b) = lex.boosters.get(word_lower) {
        scalar = b;
        if valence < 0.0 {
            scalar *= -1.0;
        }
        if is_py_upper(word) && cap_diff {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
    }
    scalar
}

fn special_case(seq: &str) -> Option<f64> {
    SPECIAL_CASES
        .iter()
        .find(|(k, _)| *k == seq)
        .map(|(_, v)| *v)
}

struct Tokens<'a> {
    words: Vec<&'a str>,
    lower: Vec<Cow<'a, str>>,
    cap_diff: bool,
}

impl Tokens<'_> {
    fn lw(&self, i: usize) -> &str {
        &self.lower[i]
    }
}

fn negation_check(mut valence: f64, t: &Tokens, start_i: usize, i: usize) -> f64 {
    match start_i {
        0 => {
            if negated(t.lw(i - 1)) {
                valence *= N_SCALAR;
            }
        }
        1 => {
            if t.lw(i - 2) == "never" && (t.lw(i - 1) == "so" || t.lw(i - 1) == "this") {
                valence *= 1.25;
            } else if t.lw(i - 2) == "without" && t.lw(i - 1) == "doubt" {
            } else if negated(t.lw(i - 2)) {
                valence *= N_SCALAR;
            }
        }
        _ => {
            if (t.lw(i - 3) == "never" && (t.lw(i - 2) == "so" || t.lw(i - 2) == "this"))
                || (t.lw(i - 1) == "so" || t.lw(i - 1) == "this")
            {
                valence *= 1.25;
            } else if t.lw(i - 3) == "without" && (t.lw(i - 2) == "doubt" || t.lw(i - 1) == "doubt")
            {
            } else if negated(t.lw(i - 3)) {
                valence *= N_SCALAR;
            }
        }
    }
    valence
}

fn special_idioms_check(lex: &Lexicons, mut valence: f64, t: &Tokens, i: usize) -> f64 {
    let (w3, w2, w1, w0) = (t.lw(i - 3), t.lw(i - 2), t.lw(i - 1), t.lw(i));
    let onezero = format!("{w1} {w0}");
    let twoonezero = format!("{w2} {w1} {w0}");
    let twoone = format!("{w2} {w1}");
    let threetwoone = format!("{w3} {w2} {w1}");
    let threetwo = format!("{w3} {w2}");
    for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    let n = t.words.len();
    if n - 1 > i
        && let Some(v) = special_case(&format!("{w0} {}", t.lw(i + 1)))
    {
        valence = v;
    }
    if n - 1 > i + 1
        && let Some(v) = special_case(&format!("{w0} {} {}", t.lw(i + 1), t.lw(i + 2)))
    {
        valence = v;
    }
    for seq in [&threetwoone, &threetwo, &twoone] {
        if let Some(b) = lex.boosters.get(seq.as_str()) {
            valence += b;
        }
    }
    valence
}

fn least_check(lex: &Lexicons, mut valence: f64, t: &Tokens, i: usize) -> f64 {
    if i > 1 && !lex.words.contains_key(t.lw(i - 1)) && t.lw(i - 1) == "least" {
        if t.lw(i - 2) != "at" && t.lw(i - 2) != "very" {
            valence *= N_SCALAR;
        }
    } else if i > 0 && !lex.words.contains_key(t.lw(i - 1)) && t.lw(i - 1) == "least" {
        valence *= N_SCALAR;
    }
    valence
}

fn sentiment_valence(lex: &Lexicons, t: &Tokens, i: usize) -> f64 {
    let item = t.words[i];
    let item_lower = t.lw(i);
    let Some(&base) = lex.words.get(item_lower) else {
        return 0.0;
    };
    let n = t.words.len();
    let mut valence = base;
    if item_lower == "no" && i != n - 1 && lex.words.contains_key(t.lw(i + 1)) {
        valence = 0.0;
    }
    if (i > 0 && t.lw(i - 1) == "no")
        || (i > 1 && t.lw(i - 2) == "no")
        || (i > 2 && t.lw(i - 3) == "no" && (t.lw(i - 1) == "or" || t.lw(i - 1) == "nor"))
    {
        valence = base * N_SCALAR;
    }
    if is_py_upper(item) && t.cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }
    for start_i in 0..3 {
        if i > start_i && !lex.words.contains_key(t.lw(i - (start_i + 1))) {
            let j = i - (start_i + 1);
            let mut s = scalar_inc_dec(lex, t.words[j], t.lw(j), valence, t.cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, t, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(lex, valence, t, i);
            }
        }
    }
    least_check(lex, valence, t, i)
}

/// The reference's `_but_check`, quirk included: for each position in turn it finds the FIRST
/// position holding an equal value and rescales that one (×0.5 before "but", ×1.5 after).
fn but_check(t: &Tokens, sentiments: &mut [f64]) {
    let Some(bi) = t.lower.iter().position(|w| w == "but") else {
        return;
    };
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        let si = sentiments.iter().position(|x| *x == v).unwrap_or(k);
        if si < bi {
            sentiments[si] = v * 0.5;
        } else if si > bi {
            sentiments[si] = v * 1.5;
        }
    }
}

fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.bytes().filter(|b| *b == b'!').count().min(4);
    let qm = text.bytes().filter(|b| *b == b'?').count();
    let ep_amp = ep as f64 * 0.292;
    let qm_amp = if qm > 1 {
        if qm <= 3 { qm as f64 * 0.18 } else { 0.96 }
    } else {
        0.0
    };
    ep_amp + qm_amp
}

fn normalize(score: f64) -> f64 {
    (score / (score * score + 15.0).sqrt()).clamp(-1.0, 1.0)
}

/// Python's `round(x, digits)`: correctly rounded from the exact binary value.
fn py_round(x: f64, digits: usize) -> f64 {
    let s = format!("{x:.digits$}");
    s.parse().unwrap_or(x)
}

fn replace_emoji<'a>(lex: &Lexicons, text: &'a str) -> Cow<'a, str> {
    if !text.chars().any(|c| lex.emoji.contains_key(&c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut prev_space = true;
    for c in text.chars() {
        if let Some(desc) = lex.emoji.get(&c) {
            if !prev_space {
                out.push(' ');
            }
            out.push_str(desc);
            prev_space = false;
        } else {
            out.push(c);
            prev_space = c == ' ';
        }
    }
    Cow::Owned(out)
}

/// VADER's `polarity_scores(text)`: the same numbers as the Python reference.
///
/// ```
/// let p = quiver_transforms::vader::polarity_scores("VADER is smart, handsome, and funny.");
/// assert_eq!(p.compound, 0.8316);
/// ```
pub fn polarity_scores(text: &str) -> Polarity {
    let lex = lexicons();
    let replaced = replace_emoji(lex, text);
    let text = replaced.trim_matches(is_py_space);
    let words: Vec<&str> = text
        .split(is_py_space)
        .filter(|w| !w.is_empty())
        .map(strip_punc_if_word)
        .collect();
    let lower_words: Vec<Cow<str>> = words.iter().map(|w| lower(w)).collect();
    let allcaps = words.iter().filter(|w| is_py_upper(w)).count();
    let cap_differential = words.len() - allcaps;
    let t = Tokens {
        cap_diff: 0 < cap_differential && cap_differential < words.len(),
        words,
        lower: lower_words,
    };

    let n = t.words.len();
    let mut sentiments = Vec::with_capacity(n);
    for i in 0..n {
        let item_lower = t.lw(i);
        if lex.boosters.contains_key(item_lower)
            || (i < n.saturating_sub(1) && item_lower == "kind" && t.lw(i + 1) == "of")
        {
            sentiments.push(0.0);
            continue;
        }
        sentiments.push(sentiment_valence(lex, &t, i));
    }
    but_check(&t, &mut sentiments);
    score_valence(&sentiments, text)
}

fn score_valence(sentiments: &[f64], text: &str) -> Polarity {
    if sentiments.is_empty() {
        return Polarity {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    // Python's `sum` on 3.11: a plain left-to-right fold from 0.
    let mut sum_s = sentiments.iter().fold(0.0, |a, b| a + b);
    let punct = punctuation_emphasis(text);
    if sum_s > 0.0 {
        sum_s += punct;
    } else if sum_s < 0.0 {
        sum_s -= punct;
    }
    let compound = normalize(sum_s);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0u32);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + f64::from(neu_count);
    Polarity {
        neg: py_round((neg_sum / total).abs(), 3),
        neu: py_round((f64::from(neu_count) / total).abs(), 3),
        pos: py_round((pos_sum / total).abs(), 3),
        compound: py_round(compound, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_examples() {
        // Values printed by vaderSentiment 3.3.2 for its own demo sentences.
        let cases = [
            ("VADER is smart, handsome, and funny.", 0.8316),
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("The book was good.", 0.4404),
            ("At least it isn't a horrible book.", 0.431),
            ("Today SUX!", -0.5461),
            ("Not bad at all", 0.431),
            ("", 0.0),
        ];
        for (text, want) in cases {
            assert_eq!(polarity_scores(text).compound, want, "{text}");
        }
    }

    #[test]
    fn but_check_rescales_by_first_equal_value() {
        // [3.8, but, 1.9]: position 0 becomes 1.9, then position 2 (1.9) finds position 0 first.
        let t = Tokens {
            words: vec!["a", "but", "b"],
            lower: vec!["a".into(), "but".into(), "b".into()],
            cap_diff: false,
        };
        let mut s = [3.8, 0.0, 1.9];
        but_check(&t, &mut s);
        assert_eq!(s, [0.95, 0.0, 1.9]);
    }
}
