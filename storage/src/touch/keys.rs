//! Touch key families and their hashes, exactly as Prisma Streams computes
//! them (touches.md §1.3): XXH3-64 with seed 0 over a family tag, `\0`
//! separators and, for template-derived keys, the template id as eight
//! big-endian bytes. The journal's hot path uses 32-bit key ids: the low
//! 32 bits of a 64-bit key, or XXH32 of any other string.

use xxhash_rust::xxh3::Xxh3;
use xxhash_rust::xxh32::xxh32;

fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = Xxh3::new();
    for p in parts {
        h.update(p);
    }
    h.digest()
}

fn with_args(tag: &[u8], tid: u64, extra: Option<&str>, args: &[&str]) -> u64 {
    let mut h = Xxh3::new();
    h.update(tag);
    h.update(&tid.to_be_bytes());
    if let Some(f) = extra {
        h.update(b"\0");
        h.update(f.as_bytes());
    }
    for a in args {
        h.update(b"\0");
        h.update(a.as_bytes());
    }
    h.digest()
}

/// The coarse key of an entity: every change of the entity touches it.
pub fn table_key(entity: &str) -> u64 {
    hash(&[b"tbl\0", entity.as_bytes()])
}

/// The id of a template: its entity and its field names, sorted (see
/// [`sort_fields`]). Encodings are not part of the id.
pub fn template_id(entity: &str, sorted_fields: &[&str]) -> u64 {
    let mut h = Xxh3::new();
    h.update(b"tpl\0");
    h.update(entity.as_bytes());
    for f in sorted_fields {
        h.update(b"\0");
        h.update(f.as_bytes());
    }
    h.digest()
}

/// The key restricted mode touches for a template (differs from its id).
pub fn template_key(template_id: u64) -> u64 {
    hash(&[b"tpl\0", &template_id.to_be_bytes()])
}

/// Any row-content change within one argument tuple of a template.
pub fn watch_key(template_id: u64, args: &[&str]) -> u64 {
    with_args(b"key\0", template_id, None, args)
}

/// Only membership changes (rows entering or leaving the tuple).
pub fn membership_key(template_id: u64, args: &[&str]) -> u64 {
    with_args(b"mem\0", template_id, None, args)
}

/// A change of one projected scalar field of rows in the tuple.
pub fn projected_field_key(template_id: u64, field: &str, args: &[&str]) -> u64 {
    with_args(b"fld\0", template_id, Some(field), args)
}

/// The 32-bit key id of a 64-bit key: its low 32 bits.
pub fn key_id(key: u64) -> u32 {
    key as u32
}

/// The 32-bit key id of a key given as text: a 16-hex-digit key (after
/// trimming, any case) gives its low 32 bits, any other string XXH32 (seed
/// 0) of its trimmed, lowercased form.
pub fn key_id_of_str(s: &str) -> u32 {
    let t = s.trim().to_lowercase();
    match parse_hex16(&t) {
        Some(k) => key_id(k),
        None => xxh32(t.as_bytes(), 0),
    }
}

/// A key as 16 lowercase hex digits.
pub fn hex16(key: u64) -> String {
    format!("{key:016x}")
}

/// Parses exactly 16 lowercase hex digits.
pub fn parse_hex16(s: &str) -> Option<u64> {
    if s.len() != 16
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Sorts field names as JavaScript sorts strings: by UTF-16 code units,
/// which differs from UTF-8 byte order only outside the Basic Multilingual
/// Plane.
pub fn sort_fields<T: AsRef<str>>(names: &mut [T]) {
    names.sort_by(|a, b| a.as_ref().encode_utf16().cmp(b.as_ref().encode_utf16()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: u64) -> String {
        hex16(k)
    }

    #[test]
    fn golden_vectors_of_the_reference() {
        let fields = ["status", "tenantId", "userId"];
        let args = ["open", "t1", "u1"];
        let tid = template_id("public.todos", &fields);
        assert_eq!(h(table_key("public.todos")), "feadeb84d447fd63");
        assert_eq!(h(tid), "ddd2330fdab379da");
        assert_eq!(h(watch_key(tid, &args)), "39accd125778dc36");
        assert_eq!(h(membership_key(tid, &args)), "eae633979a7ee466");
        assert_eq!(
            h(projected_field_key(tid, "title", &args)),
            "1ecc53e76a89f0d5"
        );
        assert_eq!(h(template_key(tid)), "5086e055faafe816");
        assert_eq!(key_id(template_key(tid)), 4205832214);
        assert_eq!(key_id(table_key("public.todos")), 3561487715);
        assert_eq!(h(table_key("posts")), "8c646d3dd6bc68f4");
        assert_eq!(h(table_key("public.posts")), "0266aa40b9d08dc8");
    }

    #[test]
    fn extra_vectors() {
        let t = template_id("public.todos", &["status", "tenantId"]);
        assert_eq!(h(t), "03d5826f0bf1e3e7");
        assert_eq!(h(template_key(t)), "a440dcf9d1c07171");
        assert_eq!(h(watch_key(t, &["open", "t1"])), "0af6023939b30f26");
        assert_eq!(h(membership_key(t, &["open", "t1"])), "a7b1b1fd3cfa6ed1");
        assert_eq!(
            h(projected_field_key(t, "title", &["open", "t1"])),
            "0848fb073b348b65"
        );
        let p = template_id("posts", &["tenantId"]);
        assert_eq!(h(p), "0af3814da0aea55f");
        assert_eq!(h(template_key(p)), "36bc0805f9eefc0a");
        assert_eq!(h(watch_key(p, &["t1"])), "f9ae463d06fcf3fc");
        assert_eq!(h(membership_key(p, &["t1"])), "998c7dcd3c0ca6c5");
        assert_eq!(h(membership_key(p, &["t2"])), "1e2eb8465e0fc10e");
        let pu = template_id("posts", &["tenantId", "userId"]);
        assert_eq!(h(pu), "940145c39e0c6eca");
        assert_eq!(h(watch_key(pu, &["t1", "123"])), "c385bc18a683a909");
        assert_eq!(h(watch_key(pu, &["t1", "456"])), "d5990f95976a97fb");
        let pp = template_id("public.posts", &["userId"]);
        assert_eq!(h(pp), "1dedf2d16458bb4e");
        assert_eq!(h(template_key(pp)), "6664de5fad103942");
        assert_eq!(h(watch_key(pp, &["42"])), "c37628366458cd69");
        let m = template_id("message", &["id"]);
        assert_eq!(h(m), "059e134555c4e1be");
        assert_eq!(h(membership_key(m, &["1"])), "455c3379cecf8bf2");
        assert_eq!(
            h(projected_field_key(m, "author", &["1"])),
            "44afe9ff6252dd08"
        );
        let e = template_id("public.events", &["at", "flag"]);
        assert_eq!(h(e), "eaaaecdcbedb201e");
        assert_eq!(
            h(watch_key(e, &["2026-03-23T10:30:00.000Z", "1"])),
            "7b292861cf31be2d"
        );
    }

    #[test]
    fn the_template_id_is_big_endian_in_derived_keys() {
        let p = template_id("posts", &["tenantId"]);
        let mut little = Xxh3::new();
        little.update(b"key\0");
        little.update(&p.to_le_bytes());
        little.update(b"\0t1");
        assert_ne!(little.digest(), watch_key(p, &["t1"]));
    }

    #[test]
    fn key_ids_of_strings() {
        assert_eq!(key_id_of_str("hello"), 4211111929);
        assert_eq!(key_id_of_str(" Hello "), 4211111929);
        assert_eq!(key_id_of_str("F9AE463D06FCF3FC"), 0x06fcf3fc);
        assert_eq!(key_id_of_str(" f9ae463d06fcf3fc"), 0x06fcf3fc);
    }

    #[test]
    fn field_order_is_utf16() {
        // U+FF5E sorts before U+1F600 in UTF-8 bytes, after it in UTF-16 (surrogates).
        let mut v = vec!["\u{1F600}", "\u{FF5E}", "a"];
        sort_fields(&mut v);
        assert_eq!(v, vec!["a", "\u{1F600}", "\u{FF5E}"]);
    }
}
