//! JSON text written the way JavaScript's `JSON.stringify` writes it.
//!
//! Weir's `serde_json` is built without `preserve_order`, so a `Value` object
//! always serializes with its keys sorted. Prisma's documents (`GET _profile`,
//! `live.metrics` events) have a fixed, non-alphabetical key order that
//! clients may diff byte for byte, so those documents are written as text
//! here, keys in insertion order and numbers in JS notation.

use serde_json::Value;

/// Formats a finite `f64` exactly like JS `Number.prototype.toString`.
///
/// Non-finite values give `NaN` / `Infinity` / `-Infinity` (JS `String(n)`);
/// JSON writers must map those to `null` themselves.
pub fn js_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if x == 0.0 {
        // Also covers -0, which JS prints as "0".
        return "0".to_string();
    }
    let a = x.abs();
    if (1e-6..1e21).contains(&a) {
        // Rust's Display is the shortest round-trip form without exponent,
        // which is what JS uses inside this range.
        format!("{x}")
    } else {
        // Outside it JS switches to exponent form and always signs the
        // exponent ("1e+21", "1.5e-7"); Rust omits the '+'.
        let s = format!("{x:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    }
}

/// A JSON string literal; `serde_json`'s escaping matches `JSON.stringify`
/// for every Rust string (lowercase `\u00xx`, no `/` escaping).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("string serialization cannot fail")
}

/// Writes a JSON number in JS notation (`null` when not finite).
fn push_f64(out: &mut String, x: f64) {
    if x.is_finite() {
        out.push_str(&js_number(x));
    } else {
        out.push_str("null");
    }
}

/// Appends `v` as JSON text. Integers stored as `u64`/`i64` print exactly;
/// floats print in JS notation; object keys come in the map's own order.
pub fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                push_f64(out, n.as_f64().unwrap_or(f64::NAN));
            }
        }
        Value::String(s) => out.push_str(&quote(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut w = ObjectWriter::new();
            for (k, item) in map {
                w.value(k, item);
            }
            out.push_str(&w.finish());
        }
    }
}

/// Builds one JSON object as text, keys in the order they are added.
#[derive(Debug)]
pub struct ObjectWriter {
    buf: String,
    empty: bool,
}

impl Default for ObjectWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectWriter {
    /// Starts an empty object.
    pub fn new() -> Self {
        ObjectWriter {
            buf: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        self.buf.push_str(&quote(k));
        self.buf.push(':');
    }

    /// Adds a string member.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(&quote(v));
        self
    }

    /// Adds a string member, or `null` when absent.
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.str(k, s),
            None => self.null(k),
        }
    }

    /// Adds an integer member, printed exactly.
    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        self.buf.push_str(&v.to_string());
        self
    }

    /// Adds an integer member, or `null` when absent.
    pub fn opt_u64(&mut self, k: &str, v: Option<u64>) -> &mut Self {
        match v {
            Some(n) => self.u64(k, n),
            None => self.null(k),
        }
    }

    /// Adds a number member in JS notation (`null` if not finite, as in
    /// `JSON.stringify`).
    pub fn f64(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        push_f64(&mut self.buf, v);
        self
    }

    /// Adds a boolean member.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    /// Adds a `null` member.
    pub fn null(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str("null");
        self
    }

    /// Adds a member whose value is already JSON text (e.g. a nested
    /// `ObjectWriter::finish`). The caller guarantees it is valid JSON.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(json);
        self
    }

    /// Adds a `serde_json::Value` member (see [`push_value`]).
    pub fn value(&mut self, k: &str, v: &Value) -> &mut Self {
        self.key(k);
        push_value(&mut self.buf, v);
        self
    }

    /// Adds an array of strings.
    pub fn str_array<S: AsRef<str>>(&mut self, k: &str, items: &[S]) -> &mut Self {
        self.key(k);
        self.buf.push('[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            self.buf.push_str(&quote(s.as_ref()));
        }
        self.buf.push(']');
        self
    }

    /// Closes the object and returns its text.
    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_number_matches_javascript_to_string() {
        // Reference strings are what V8/JSC print for String(n).
        assert_eq!(js_number(0.0), "0");
        assert_eq!(js_number(-0.0), "0");
        assert_eq!(js_number(100.0), "100");
        assert_eq!(js_number(-5.0), "-5");
        assert_eq!(js_number(0.1), "0.1");
        assert_eq!(js_number(1.0 / 3.0), "0.3333333333333333");
        assert_eq!(js_number(2.0 / 3.0), "0.6666666666666666");
        assert_eq!(js_number(0.25), "0.25");
        assert_eq!(js_number(1e-6), "0.000001");
        assert_eq!(js_number(1.5e-7), "1.5e-7");
        assert_eq!(js_number(1e-7), "1e-7");
        assert_eq!(js_number(1e20), "100000000000000000000");
        assert_eq!(js_number(1e21), "1e+21");
        assert_eq!(js_number(1.2345e30), "1.2345e+30");
        assert_eq!(js_number(-1e21), "-1e+21");
        assert_eq!(js_number(9007199254740993.0), "9007199254740992");
        assert_eq!(js_number(2f64.powi(60)), "1152921504606847000");
        assert_eq!(js_number(f64::NAN), "NaN");
        assert_eq!(js_number(f64::INFINITY), "Infinity");
        assert_eq!(js_number(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn quote_matches_json_stringify() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\n\t\u{1}/é"), "\"\\n\\t\\u0001/é\"");
    }

    #[test]
    fn object_writer_keeps_insertion_order() {
        let mut w = ObjectWriter::new();
        w.str("z", "1")
            .u64("a", 2)
            .f64("m", 0.5)
            .f64("inf", f64::INFINITY)
            .bool("b", false)
            .opt_str("n", None)
            .opt_u64("g", Some(7))
            .str_array("f", &["x", "y"])
            .raw("o", "{}");
        assert_eq!(
            w.finish(),
            r#"{"z":"1","a":2,"m":0.5,"inf":null,"b":false,"n":null,"g":7,"f":["x","y"],"o":{}}"#
        );
        assert_eq!(ObjectWriter::new().finish(), "{}");
    }

    #[test]
    fn push_value_writes_js_numbers() {
        let v: Value = serde_json::from_str(r#"{"b":[1,2.5,-3,1e21,null,true],"a":"s"}"#).unwrap();
        let mut out = String::new();
        push_value(&mut out, &v);
        // serde_json's map is sorted (no preserve_order), hence "a" first.
        assert_eq!(out, r#"{"a":"s","b":[1,2.5,-3,1e+21,null,true]}"#);
    }
}
