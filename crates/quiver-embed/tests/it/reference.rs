//! The sentence-transformers fixture written by `tests/fixtures/make_reference.py`.

use serde::Deserialize;

/// One text with what sentence-transformers made of it.
pub struct Item {
    pub text: String,
    pub input_ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

pub struct Fixture {
    pub reviews: Vec<Item>,
    pub edge_cases: Vec<Item>,
}

#[derive(Deserialize)]
struct RawItem {
    text: String,
    input_ids: Vec<u32>,
    embedding_f32le_b64: String,
}

#[derive(Deserialize)]
struct RawFixture {
    reviews: Vec<RawItem>,
    edge_cases: Vec<RawItem>,
}

pub fn load() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reviews_200.json"
    );
    let raw: RawFixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let items = |raw: Vec<RawItem>| -> Vec<Item> {
        raw.into_iter()
            .map(|r| Item {
                text: r.text,
                input_ids: r.input_ids,
                embedding: base64_decode(&r.embedding_f32le_b64)
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            })
            .collect()
    };
    Fixture {
        reviews: items(raw.reviews),
        edge_cases: items(raw.edge_cases),
    }
}

/// Standard base64 with `=` padding.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    out
}
