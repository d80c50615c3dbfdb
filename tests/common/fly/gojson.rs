//! Reading JSON fields the way Go's `encoding/json` decodes a typed struct: `null` is
//! absent, a wrong type fails with Go's own message.

use serde_json::{Map, Value};

pub type Obj = Map<String, Value>;
type Checked<T> = Result<T, String>;

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub fn type_error(found: &Value, path: &str, go_type: &str) -> String {
    if path.is_empty() {
        return format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            kind(found)
        );
    }
    format!(
        "json: cannot unmarshal {} into Go struct field {path} of type {go_type}",
        kind(found)
    )
}

/// A present, non-null field; `null` reads as absent, as Go's decoder leaves the zero value.
fn field<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub fn opt_str<'a>(obj: &'a Obj, key: &str, path: &str) -> Checked<Option<&'a str>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(type_error(other, path, "string")),
    }
}

pub fn opt_bool(obj: &Obj, key: &str, path: &str) -> Checked<Option<bool>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(type_error(other, path, "bool")),
    }
}

pub fn opt_int(obj: &Obj, key: &str, path: &str) -> Checked<Option<i64>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(other) => Err(type_error(other, path, "int")),
    }
}

pub fn opt_obj<'a>(obj: &'a Obj, key: &str, path: &str) -> Checked<Option<&'a Obj>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(type_error(other, path, "object")),
    }
}

pub fn opt_arr<'a>(obj: &'a Obj, key: &str, path: &str) -> Checked<Option<&'a Vec<Value>>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(other) => Err(type_error(other, path, "[]")),
    }
}

/// A `map[string]string` (reference §8.2: metadata and env hold strings only).
pub fn string_map(obj: &Obj, key: &str, path: &str) -> Checked<()> {
    for value in opt_obj(obj, key, path)?
        .into_iter()
        .flat_map(|m| m.values())
    {
        if !value.is_string() {
            return Err(type_error(value, path, "string"));
        }
    }
    Ok(())
}

pub fn string_list(obj: &Obj, key: &str, path: &str) -> Checked<()> {
    for value in opt_arr(obj, key, path)?.into_iter().flatten() {
        if !value.is_string() {
            return Err(type_error(value, path, "string"));
        }
    }
    Ok(())
}
