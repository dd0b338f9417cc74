//! Forks: inherited reads through the lineage, sub-offsets, soft delete with
//! cascading collection, and recovery of all of it after a reopen.

use futures::executor::block_on;
use weir_storage::{
    AppendRequest, Engine, EngineConfig, Error, ForkRequest, Record, StreamConfig, SubOffset,
};

fn append(e: &Engine, name: &str, payloads: &[&str]) {
    let records = payloads
        .iter()
        .map(|p| Record::new(p.to_string()))
        .collect();
    e.append(
        name,
        AppendRequest {
            records,
            ..Default::default()
        },
    )
    .unwrap();
}

fn read_all(e: &Engine, name: &str) -> Vec<String> {
    let r = e.read(name, 0, 1 << 20).unwrap();
    r.batches
        .iter()
        .flat_map(|b| {
            b.iter()
                .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
        })
        .collect()
}

fn fork(
    e: &Engine,
    name: &str,
    source: &str,
    offset: Option<u64>,
    sub: SubOffset,
) -> Result<bool, Error> {
    let req = ForkRequest {
        source: source.into(),
        offset,
        sub_offset: sub,
        ..Default::default()
    };
    block_on(e.fork_stream(name, req)).map(|o| o.created)
}

#[test]
fn forks_read_through_their_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    e.create_stream("l0", StreamConfig::new("text/plain"))
        .unwrap();
    append(&e, "l0", &["a", "b"]);
    assert!(fork(&e, "l1", "l0", None, SubOffset::None).unwrap());
    assert!(
        !fork(&e, "l1", "l0", None, SubOffset::None).unwrap(),
        "identical re-create is idempotent"
    );
    append(&e, "l1", &["c"]);
    append(&e, "l0", &["x"]);
    assert!(fork(&e, "l2", "l1", Some(2), SubOffset::Bytes(0)).unwrap());
    append(&e, "l2", &["d"]);
    assert_eq!(read_all(&e, "l0"), ["a", "b", "x"]);
    assert_eq!(read_all(&e, "l1"), ["a", "b", "c"]);
    assert_eq!(read_all(&e, "l2"), ["a", "b", "d"]);
    assert_eq!(e.head("l2").unwrap().next_offset, 3);
    // Offsets past the source's tail are refused; so is a different re-create.
    assert!(matches!(
        fork(&e, "l3", "l0", Some(9), SubOffset::None),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        fork(&e, "l1", "l0", Some(0), SubOffset::None),
        Err(Error::ConfigConflict)
    );
    assert_eq!(
        fork(&e, "nope", "missing", None, SubOffset::None),
        Err(Error::NotFound)
    );
}

#[test]
fn sub_offsets_slice_bytes_or_messages() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    e.create_stream("bin", StreamConfig::new("text/plain"))
        .unwrap();
    append(&e, "bin", &["hello"]);
    assert!(fork(&e, "bin-f", "bin", Some(0), SubOffset::Bytes(3)).unwrap());
    append(&e, "bin-f", &["LO"]);
    assert_eq!(read_all(&e, "bin-f"), ["hel", "LO"]);
    assert!(matches!(
        fork(&e, "bin-g", "bin", Some(0), SubOffset::Bytes(6)),
        Err(Error::Invalid(_))
    ));

    e.create_stream("json", StreamConfig::new("application/json"))
        .unwrap();
    append(&e, "json", &["1", "2", "3", "4"]);
    assert!(fork(&e, "json-f", "json", Some(0), SubOffset::Records(2)).unwrap());
    assert_eq!(read_all(&e, "json-f"), ["1", "2"]);
    append(&e, "json-f", &["9"]);
    assert_eq!(read_all(&e, "json-f"), ["1", "2", "9"]);
    assert!(matches!(
        fork(&e, "json-g", "json", Some(0), SubOffset::Records(5)),
        Err(Error::Invalid(_))
    ));
    // A fork of a fork that ends inside an ancestor's batch stays cut there.
    assert!(fork(&e, "json-h", "json-f", Some(1), SubOffset::None).unwrap());
    assert_eq!(read_all(&e, "json-h"), ["1"]);
}

#[test]
fn soft_delete_keeps_data_until_the_last_fork_goes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        e.create_stream("src", StreamConfig::new("text/plain"))
            .unwrap();
        append(&e, "src", &["kept"]);
        fork(&e, "mid", "src", None, SubOffset::None).unwrap();
        append(&e, "mid", &["m"]);
        fork(&e, "leaf", "mid", None, SubOffset::None).unwrap();
        e.delete_stream("src").unwrap();
        e.delete_stream("mid").unwrap();
        assert_eq!(e.head("src").unwrap_err(), Error::Gone);
        assert_eq!(e.delete_stream("mid").unwrap_err(), Error::Gone);
        // The name is reserved, and the error says so (not "a different
        // configuration").
        assert_eq!(
            e.create_stream("src", StreamConfig::new("text/plain"))
                .unwrap_err(),
            Error::NameReserved
        );
        assert_eq!(
            fork(&e, "other", "src", None, SubOffset::None),
            Err(Error::ConfigConflict)
        );
        assert_eq!(read_all(&e, "leaf"), ["kept", "m"]);
        e.shutdown();
    }
    // Links, soft-delete marks and tails survive a restart.
    let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    assert_eq!(e.head("mid").unwrap_err(), Error::Gone);
    assert_eq!(read_all(&e, "leaf"), ["kept", "m"]);
    append(&e, "leaf", &["l"]);
    assert_eq!(read_all(&e, "leaf"), ["kept", "m", "l"]);
    // Deleting the last fork collects the whole soft-deleted chain.
    e.delete_stream("leaf").unwrap();
    for name in ["leaf", "mid", "src"] {
        assert_eq!(e.head(name).unwrap_err(), Error::NotFound, "{name}");
    }
    e.create_stream("src", StreamConfig::new("text/plain"))
        .unwrap();
    assert!(read_all(&e, "src").is_empty());
}

#[test]
fn empty_fork_tail_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        e.create_stream("s", StreamConfig::new("text/plain"))
            .unwrap();
        append(&e, "s", &["a", "b", "c"]);
        fork(&e, "f", "s", Some(2), SubOffset::None).unwrap();
        e.shutdown();
    }
    let e = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    assert_eq!(e.head("f").unwrap().next_offset, 2);
    append(&e, "f", &["z"]);
    assert_eq!(read_all(&e, "f"), ["a", "b", "z"]);
}
