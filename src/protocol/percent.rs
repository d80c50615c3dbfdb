//! Percent-encoding of query values and path segments, the one way catty writes and reads
//! them on the wire.

/// All but the unreserved characters (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The text `encoded` stands for; `None` for a bad `%` sequence, a raw `+`, `=` or `&`, or
/// bytes that are not UTF-8.
pub fn decode(encoded: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'%' => {
                let hex = std::str::from_utf8(rest.get(..2)?).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &rest[2..];
            }
            b'+' | b'=' | b'&' => return None,
            _ => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for text in ["src/main.rs", "a b/ü%&=+.txt", "", "main"] {
            assert_eq!(decode(&encode(text)).as_deref(), Some(text));
        }
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn malformed_is_refused() {
        for bad in ["%zz", "%4", "a&b", "a=b", "a+b", "%FF"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
