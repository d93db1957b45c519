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
}

impl ValueType {
    /// Every type, in the order the docs list them.
    pub const ALL: [ValueType; 7] = [
        ValueType::Int64,
        ValueType::Int32,
        ValueType::Float64,
        ValueType::Float32,
        ValueType::String,
        ValueType::Bool,
        ValueType::Timestamp,
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
        let t = match s.trim().to_ascii_lowercase().as_str() {
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
