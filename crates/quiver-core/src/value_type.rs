//! Value types of join keys and features.

use std::fmt;
use std::str::FromStr;

/// The type of a feature or a join key, as written in YAML.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// 64-bit signed integer.
    Int64,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit float.
    Float64,
    /// 32-bit float.
    Float32,
    /// UTF-8 text.
    String,
    /// Boolean.
    Bool,
    /// Timestamp (UTC, microseconds).
    Timestamp,
    /// A list of 32-bit floats: embeddings and other vectors.
    #[serde(rename = "list<float32>")]
    Float32List,
    /// A list of 64-bit floats.
    #[serde(rename = "list<float64>")]
    Float64List,
    /// A list of 64-bit integers.
    #[serde(rename = "list<int64>")]
    Int64List,
    /// A list of strings.
    #[serde(rename = "list<string>")]
    StringList,
}

impl ValueType {
    /// Every type, in the order the docs list them.
    pub const ALL: [ValueType; 11] = [
        ValueType::Int64,
        ValueType::Int32,
        ValueType::Float64,
        ValueType::Float32,
        ValueType::String,
        ValueType::Bool,
        ValueType::Timestamp,
        ValueType::Float32List,
        ValueType::Float64List,
        ValueType::Int64List,
        ValueType::StringList,
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Int64 => "int64",
            ValueType::Int32 => "int32",
            ValueType::Float64 => "float64",
            ValueType::Float32 => "float32",
            ValueType::String => "string",
            ValueType::Bool => "bool",
            ValueType::Timestamp => "timestamp",
            ValueType::Float32List => "list<float32>",
            ValueType::Float64List => "list<float64>",
            ValueType::Int64List => "list<int64>",
            ValueType::StringList => "list<string>",
        }
    }

    /// The element type of a list type.
    pub fn element(self) -> Option<ValueType> {
        match self {
            ValueType::Float32List => Some(ValueType::Float32),
            ValueType::Float64List => Some(ValueType::Float64),
            ValueType::Int64List => Some(ValueType::Int64),
            ValueType::StringList => Some(ValueType::String),
            _ => None,
        }
    }

    /// Whether the type is numeric.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ValueType::Int64 | ValueType::Int32 | ValueType::Float64 | ValueType::Float32
        )
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ValueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase().replace(' ', "");
        // `list<float32>`, `array<float32>`, `vector` (embeddings) and `float32_list`.
        let inner = lower
            .strip_prefix("list<")
            .or_else(|| lower.strip_prefix("array<"))
            .and_then(|r| r.strip_suffix('>'))
            .or_else(|| lower.strip_suffix("_list"));
        if let Some(inner) =
            inner.or((lower == "vector" || lower == "embedding").then_some("float32"))
        {
            return match inner.parse::<ValueType>()? {
                ValueType::Float32 => Ok(ValueType::Float32List),
                ValueType::Float64 => Ok(ValueType::Float64List),
                ValueType::Int64 => Ok(ValueType::Int64List),
                ValueType::String => Ok(ValueType::StringList),
                other => Err(format!(
                    "lists of {other} are not supported: use list<float32>, list<float64>, list<int64> or list<string>"
                )),
            };
        }
        let t = match lower.as_str() {
            "int64" | "long" => ValueType::Int64,
            "int32" | "int" => ValueType::Int32,
            "float64" | "double" => ValueType::Float64,
            "float32" | "float" => ValueType::Float32,
            "string" | "str" => ValueType::String,
            "bool" | "boolean" => ValueType::Bool,
            "timestamp" | "unix_timestamp" => ValueType::Timestamp,
            other => {
                let all: Vec<_> = ValueType::ALL.iter().map(|t| t.as_str()).collect();
                return Err(format!(
                    "unknown type '{other}': use one of {}",
                    all.join(", ")
                ));
            }
        };
        Ok(t)
    }
}
