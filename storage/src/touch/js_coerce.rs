//! JavaScript's implicit conversions (`Number(v)`, `!!v`, `String(v)`) applied
//! to parsed JSON values.
//!
//! Prisma validates profile numbers with `Number(value)` and `enabled` with
//! `!!value`, so `"100"`, `[100]`, `true` and `null` are all accepted as
//! numbers. Mirroring that keeps every profile Prisma accepts (and the
//! normalized form it stores) identical in Weir.

use serde_json::Value;

use super::json_text::js_number;

/// JS `ToBoolean` of a JSON value (`!!v`).
pub fn to_boolean(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0 && !x.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// JS `ToNumber` of a JSON value (`Number(v)`); `NaN` when JS gives `NaN`.
pub fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => string_to_number(s),
        // Arrays go through Array.prototype.toString (join with ",").
        Value::Array(_) => string_to_number(&to_js_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

/// JS `String(v)` of a JSON value.
pub fn to_js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => js_number(u as f64),
            (None, Some(i)) => js_number(i as f64),
            _ => js_number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| match item {
                    // join() turns null/undefined elements into "".
                    Value::Null => String::new(),
                    other => to_js_string(other),
                })
                .collect();
            parts.join(",")
        }
        Value::Object(_) => "[object Object]".to_string(),
    }
}

/// JS WhiteSpace and LineTerminator code points (what `String.prototype.trim`
/// and `Number("…")` strip). Differs from `char::is_whitespace`: U+FEFF is in,
/// U+0085 is out.
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{A}' | '\u{B}' | '\u{C}' | '\u{D}' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// JS `StringToNumber`: trimmed; empty → 0; `0x`/`0o`/`0b` integers (no
/// sign); signed decimal literals or `Infinity`; anything else `NaN`.
pub fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_whitespace);
    if t.is_empty() {
        return 0.0;
    }
    let b = t.as_bytes();
    if b.len() >= 2 && b[0] == b'0' {
        let radix = match b[1] {
            b'x' | b'X' => Some(16),
            b'o' | b'O' => Some(8),
            b'b' | b'B' => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            return parse_radix(&t[2..], radix);
        }
    }
    let (negative, body) = match b[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if body == "Infinity" {
        return if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if !is_decimal_literal(body) {
        return f64::NAN;
    }
    // The grammar is checked above; Rust's parser is correctly rounded like
    // JS's and accepts the same forms ("1.", ".5", "1e+5").
    let x: f64 = body.parse().unwrap_or(f64::NAN);
    if negative {
        -x
    } else {
        x
    }
}

/// `StrUnsignedDecimalLiteral` without `Infinity`: digits, an optional
/// fraction, an optional exponent, and at least one mantissa digit.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        mantissa_digits += i - frac_start;
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Digits of a `0x`/`0o`/`0b` literal. Exact up to 128 bits, then
/// accumulated in f64 (values that large are rejected by every caller's
/// range check or saturate anyway).
fn parse_radix(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() {
        return f64::NAN;
    }
    let mut exact: Option<u128> = Some(0);
    let mut approx = 0.0f64;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else {
            return f64::NAN;
        };
        exact = exact
            .and_then(|v| v.checked_mul(u128::from(radix)))
            .and_then(|v| v.checked_add(u128::from(d)));
        approx = approx * f64::from(radix) + f64::from(d);
    }
    match exact {
        Some(v) => v as f64,
        None => approx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(v: Value) -> f64 {
        to_number(&v)
    }

    #[test]
    fn to_number_follows_js() {
        // Reference values: what Number(x) gives in JS.
        assert_eq!(num(json!(null)), 0.0);
        assert_eq!(num(json!(true)), 1.0);
        assert_eq!(num(json!(false)), 0.0);
        assert_eq!(num(json!(12.5)), 12.5);
        assert_eq!(num(json!("100")), 100.0);
        assert_eq!(num(json!("  42\n")), 42.0);
        assert_eq!(num(json!("\u{feff}7\u{3000}")), 7.0);
        assert_eq!(num(json!("")), 0.0);
        assert_eq!(num(json!("   ")), 0.0);
        assert_eq!(num(json!("0x10")), 16.0);
        assert_eq!(num(json!("0B101")), 5.0);
        assert_eq!(num(json!("0o17")), 15.0);
        assert_eq!(num(json!("1e3")), 1000.0);
        assert_eq!(num(json!("+1.5")), 1.5);
        assert_eq!(num(json!("-.5")), -0.5);
        assert_eq!(num(json!("5.")), 5.0);
        assert_eq!(num(json!("-Infinity")), f64::NEG_INFINITY);
        assert_eq!(num(json!([])), 0.0);
        assert_eq!(num(json!([5])), 5.0);
        assert_eq!(num(json!([["7"]])), 7.0);
        assert_eq!(num(json!([null])), 0.0);
        for nan in [
            json!("abc"),
            json!("1_000"),
            json!("."),
            json!("1e"),
            json!("-0x10"),
            json!("0x"),
            json!("0xg"),
            json!("inf"),
            json!("NaN"),
            json!("infinity"),
            json!("1 2"),
            json!("\u{85}1"),
            json!([1, 2]),
            json!([true]),
            json!({}),
        ] {
            assert!(num(nan.clone()).is_nan(), "{nan} should be NaN");
        }
    }

    #[test]
    fn to_boolean_follows_js() {
        assert!(!to_boolean(&json!(null)));
        assert!(!to_boolean(&json!(false)));
        assert!(!to_boolean(&json!(0)));
        assert!(!to_boolean(&json!(-0.0)));
        assert!(!to_boolean(&json!("")));
        assert!(to_boolean(&json!("false")));
        assert!(to_boolean(&json!(0.1)));
        assert!(to_boolean(&json!([])));
        assert!(to_boolean(&json!({})));
        assert!(to_boolean(&json!(true)));
    }

    #[test]
    fn to_js_string_follows_js() {
        assert_eq!(to_js_string(&json!(null)), "null");
        assert_eq!(
            to_js_string(&json!([1, null, "a", [2, 3], true])),
            "1,,a,2,3,true"
        );
        assert_eq!(to_js_string(&json!({"a": 1})), "[object Object]");
        assert_eq!(to_js_string(&json!(1.5)), "1.5");
    }
}
