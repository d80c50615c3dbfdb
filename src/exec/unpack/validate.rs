//! Pure validation over the central directory, before anything is written: every name stays
//! inside the workspace, no entry passes through a file or a symlink of the archive, no
//! symlink points out, and the declared sizes and entry count fit the limits.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::entry::{CentralEntry, Kind, kind_of};
use super::{Limits, UnpackError};

/// Linux NAME_MAX: a longer component is the archive's fault, not an I/O failure.
const MAX_COMPONENT_BYTES: usize = 255;
/// Leaves room under PATH_MAX for the workspace's own path.
const MAX_NAME_BYTES: usize = 3840;

/// An entry that passed validation: where it goes, relative to the workspace.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Planned {
    pub(super) path: PathBuf,
    pub(super) kind: Kind,
}

/// The name's path components, dropping `.` and empty ones; `..` is never allowed.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.contains(&0) {
        return Err("name contains NUL");
    }
    if name.starts_with(b"/") {
        return Err("absolute path");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("name too long");
    }
    let mut parts = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if parts.is_empty() => return Err("path leaves the workspace"),
            b".." => return Err("path has a .. component"),
            long if long.len() > MAX_COMPONENT_BYTES => return Err("name component too long"),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err("name is the workspace itself");
    }
    Ok(parts)
}

/// Checks every record in central-directory order and plans where each one goes.
///
/// Conflicts are judged against the whole archive, not only earlier entries, so `ln/x` before
/// the symlink `ln` is still caught (and named, being first).
pub(super) fn validate(
    records: &[CentralEntry],
    limits: &Limits,
) -> Result<Vec<Planned>, UnpackError> {
    let keys: Vec<_> = records
        .iter()
        .map(|r| components(&r.name).map(|p| p.join(&b'/')))
        .collect();
    let mut kinds = HashMap::new();
    for (r, key) in records.iter().zip(&keys) {
        if let (Ok(key), Ok(kind)) = (key, kind_of(&r.name, r.mode)) {
            kinds.entry(key.as_slice()).or_insert(kind);
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0u64);
    let mut plan = Vec::with_capacity(records.len());
    for (i, (r, key)) in records.iter().zip(&keys).enumerate() {
        if i as u64 >= limits.max_entries {
            let reason = format!("archive has more than {} entries", limits.max_entries);
            return Err(UnpackError::bad(&r.name, reason));
        }
        total = total.saturating_add(r.size);
        if total > limits.max_total_bytes {
            let reason = format!(
                "archive declares more than {} bytes uncompressed",
                limits.max_total_bytes
            );
            return Err(UnpackError::bad(&r.name, reason));
        }
        let kind =
            check_entry(r, key, &kinds, &mut seen).map_err(|e| UnpackError::bad(&r.name, e))?;
        let path = PathBuf::from(OsStr::from_bytes(key.as_deref().unwrap_or_default()));
        plan.push(Planned { path, kind });
    }
    Ok(plan)
}

fn check_entry<'k>(
    r: &CentralEntry,
    key: &'k Result<Vec<u8>, &str>,
    kinds: &HashMap<&[u8], Kind>,
    seen: &mut HashSet<&'k [u8]>,
) -> Result<Kind, String> {
    if let Some(problem) = &r.problem {
        return Err(problem.clone());
    }
    let key = key.as_ref().map_err(|e| e.to_string())?;
    let kind = kind_of(&r.name, r.mode)?;
    if !seen.insert(key.as_slice()) {
        return Err("duplicate name".into());
    }
    for (i, _) in key.iter().enumerate().filter(|(_, b)| **b == b'/') {
        let parent = String::from_utf8_lossy(&key[..i]);
        match kinds.get(&key[..i]) {
            Some(Kind::File) => return Err(format!("parent {parent:?} is a file")),
            Some(Kind::Symlink) => return Err(format!("path passes through symlink {parent:?}")),
            _ => {}
        }
    }
    if kind == Kind::Symlink {
        check_target(key, r.link.as_deref().unwrap_or_default(), kinds)?;
    }
    Ok(kind)
}

/// Resolves a link target lexically from the link's directory. It must stay inside and must
/// not traverse another symlink of the archive: chains are how lexical checks get fooled.
fn check_target(key: &[u8], target: &[u8], kinds: &HashMap<&[u8], Kind>) -> Result<(), String> {
    if target.is_empty() || target.contains(&0) {
        return Err("symlink target is empty or contains NUL".into());
    }
    if target.starts_with(b"/") {
        return Err("symlink target is absolute".into());
    }
    let mut at: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
    at.pop();
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if at.pop().is_none() {
                    return Err("symlink points outside the workspace".into());
                }
            }
            part => {
                at.push(part);
                let so_far = at.join(&b'/');
                if kinds.get(so_far.as_slice()) == Some(&Kind::Symlink) {
                    let via = String::from_utf8_lossy(&so_far);
                    return Err(format!("symlink target passes through symlink {via:?}"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::unpack::testing::{CHAR_DEVICE, DIR, FIFO, FILE, LINK};

    fn rec(name: &str, mode: u32, link: Option<&str>) -> CentralEntry {
        let link = link.map(|l| l.as_bytes().to_vec());
        CentralEntry {
            name: name.into(),
            mode,
            size: 1,
            mtime: None,
            link,
            problem: None,
        }
    }

    fn file(name: &str) -> CentralEntry {
        rec(name, FILE, None)
    }

    fn link(name: &str, target: &str) -> CentralEntry {
        rec(name, LINK, Some(target))
    }

    fn first_bad(records: &[CentralEntry], limits: &Limits) -> (String, String) {
        match validate(records, limits) {
            Err(UnpackError::BadEntry { name, reason }) => (name, reason),
            other => panic!("expected a bad entry, got {other:?}"),
        }
    }

    #[test]
    fn components_drop_dots_and_refuse_escapes() {
        assert_eq!(components(b"a/./b").unwrap(), [b"a", b"b"]);
        assert_eq!(components(b"./a//b/").unwrap(), [b"a", b"b"]);
        assert_eq!(components(b"a\\..\\b").unwrap(), [b"a\\..\\b".as_slice()]);
        let long = vec![b'x'; MAX_COMPONENT_BYTES + 1];
        for (name, reason) in [
            (b"".as_slice(), "empty name"),
            (b"/etc/evil", "absolute path"),
            (b"a\0b", "name contains NUL"),
            (b"../evil", "path leaves the workspace"),
            (b"a/../b", "path has a .. component"),
            (b"./", "name is the workspace itself"),
            (&long, "name component too long"),
        ] {
            assert_eq!(
                components(name),
                Err(reason),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn a_good_archive_is_planned_in_order() {
        let records = [
            rec("src/", DIR, None),
            file("src/./a.txt"),
            link("link", "src/a.txt"),
            link("src/up", "../src/a.txt"),
            link("here", "."),
            link("round", "src/.."),
        ];
        let plan = validate(&records, &Limits::DEFAULT).unwrap();
        let got: Vec<_> = plan
            .iter()
            .map(|p| (p.path.to_str().unwrap(), p.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("src", Kind::Dir),
                ("src/a.txt", Kind::File),
                ("link", Kind::Symlink),
                ("src/up", Kind::Symlink),
                ("here", Kind::Symlink),
                ("round", Kind::Symlink),
            ]
        );
    }

    #[test]
    fn the_first_bad_entry_is_named() {
        let ok = || file("ok.txt");
        let cases: Vec<(Vec<CentralEntry>, &str, &str)> = vec![
            (vec![ok(), file("/etc/evil")], "/etc/evil", "absolute path"),
            (
                vec![ok(), file("../evil")],
                "../evil",
                "leaves the workspace",
            ),
            (
                vec![ok(), file("a/../../evil")],
                "a/../../evil",
                ".. component",
            ),
            (vec![ok(), file("")], "", "empty name"),
            (
                vec![ok(), link("ln", "../../etc")],
                "ln",
                "outside the workspace",
            ),
            (
                vec![ok(), link("d/ln", "../../etc")],
                "d/ln",
                "outside the workspace",
            ),
            (vec![ok(), link("ln", "/etc/passwd")], "ln", "absolute"),
            (vec![ok(), link("ln", "")], "ln", "empty"),
            (
                vec![ok(), link("ln", "sub"), file("ln/x")],
                "ln/x",
                "through symlink \"ln\"",
            ),
            (
                vec![ok(), file("ln/x"), link("ln", "sub")],
                "ln/x",
                "through symlink \"ln\"",
            ),
            (
                vec![ok(), link("l1", "."), link("l2", "l1/../x")],
                "l2",
                "through symlink \"l1\"",
            ),
            (
                vec![ok(), link("l2", "l1/../x"), link("l1", ".")],
                "l2",
                "through symlink \"l1\"",
            ),
            (
                vec![ok(), link("self", "self")],
                "self",
                "through symlink \"self\"",
            ),
            (
                vec![ok(), rec("dev", CHAR_DEVICE, None)],
                "dev",
                "special file",
            ),
            (vec![ok(), rec("fifo", FIFO, None)], "fifo", "special file"),
            (vec![ok(), file("a/b"), file("a/./b")], "a/./b", "duplicate"),
            (
                vec![ok(), rec("d/", DIR, None), rec("d/", DIR, None)],
                "d/",
                "duplicate",
            ),
            (
                vec![ok(), rec("d/", DIR, None), file("d")],
                "d",
                "duplicate",
            ),
            (
                vec![ok(), file("a"), file("a/b")],
                "a/b",
                "parent \"a\" is a file",
            ),
            (
                vec![ok(), file("a/b/c"), file("a")],
                "a/b/c",
                "parent \"a\" is a file",
            ),
            (
                vec![ok(), file("../first"), file("/second")],
                "../first",
                "leaves",
            ),
        ];
        for (records, name, reason) in cases {
            let (got_name, got_reason) = first_bad(&records, &Limits::DEFAULT);
            assert_eq!(got_name, name);
            assert!(got_reason.contains(reason), "{name}: {got_reason}");
        }
    }

    #[test]
    fn problems_found_while_reading_are_reported_in_order() {
        let mut broken = file("broken");
        broken.problem = Some("unsupported compression Bz".into());
        let records = [file("ok.txt"), broken, file("../later")];
        let (name, reason) = first_bad(&records, &Limits::DEFAULT);
        assert_eq!(
            (name.as_str(), reason.as_str()),
            ("broken", "unsupported compression Bz")
        );
    }

    #[test]
    fn limits_name_the_entry_that_passes_them() {
        let records: Vec<_> = (0..5).map(|i| file(&format!("f{i}"))).collect();
        let limits = Limits {
            max_entries: 3,
            max_total_bytes: 100,
        };
        let (name, reason) = first_bad(&records, &limits);
        assert_eq!(
            (name.as_str(), reason.as_str()),
            ("f3", "archive has more than 3 entries")
        );
        assert!(validate(&records[..3], &limits).is_ok());

        let mut records = records;
        records[2].size = 99;
        let (name, reason) = first_bad(
            &records,
            &Limits {
                max_entries: 10,
                max_total_bytes: 100,
            },
        );
        assert_eq!(name, "f2");
        assert_eq!(reason, "archive declares more than 100 bytes uncompressed");
    }
}

/// Property tests: archives of generated names, types and link targets built from the
/// pieces attacks are made of (`..`, `/`, `.`, NUL, links to links). Whatever validation
/// accepts stays in the workspace: relative paths without `..`, no duplicates, no parent
/// that is a file or a link, every link target inside. `PROPTEST_CASES` sets how many.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::exec::unpack::testing::{DIR, FIFO, FILE, LINK};
    use proptest::prelude::*;
    use std::path::Path;

    /// Mostly plain names, so that many archives pass and their links get checked.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            12 => prop::sample::select(vec!["a", "b", "c", "d"]),
            2 => Just(".."),
            1 => prop::sample::select(vec![".", "", "/", "\0"]),
        ]
    }

    fn path() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(piece(), 1..4).prop_map(|parts| parts.join("/").into_bytes())
    }

    fn entry() -> impl Strategy<Value = CentralEntry> {
        let mode = prop_oneof![
            8 => prop::sample::select(vec![FILE, DIR, LINK, 0]),
            1 => Just(FIFO),
        ];
        (path(), mode, path()).prop_map(|(name, mode, target)| CentralEntry {
            name,
            mode,
            size: 1,
            mtime: None,
            link: (mode == LINK).then_some(target),
            problem: None,
        })
    }

    /// The link target `target` of the link at `link`, resolved lexically: `None` if it
    /// leaves the workspace.
    fn resolve(link: &Path, target: &[u8]) -> Option<Vec<Vec<u8>>> {
        let mut at: Vec<Vec<u8>> = link
            .parent()?
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect();
        for part in target.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    at.pop()?;
                }
                name => at.push(name.to_vec()),
            }
        }
        Some(at)
    }

    proptest! {
        #[test]
        fn what_is_accepted_stays_inside(records in prop::collection::vec(entry(), 1..6)) {
            let limits = Limits { max_entries: 100, max_total_bytes: 1 << 20 };
            let Ok(plan) = validate(&records, &limits) else { return Ok(()) };
            prop_assert_eq!(plan.len(), records.len());
            let kinds: HashMap<&Path, Kind> =
                plan.iter().map(|p| (p.path.as_path(), p.kind)).collect();
            prop_assert_eq!(kinds.len(), plan.len(), "duplicates");
            for (p, r) in plan.iter().zip(&records) {
                let bytes = p.path.as_os_str().as_bytes();
                prop_assert!(!bytes.is_empty() && !bytes.contains(&0));
                prop_assert!(p.path.is_relative());
                prop_assert!(p.path.iter().all(|c| c != ".."), "{:?}", p.path);
                for parent in p.path.ancestors().skip(1) {
                    prop_assert!(
                        !matches!(kinds.get(parent), Some(Kind::File | Kind::Symlink)),
                        "{:?} under a file or link",
                        p.path
                    );
                }
                if p.kind == Kind::Symlink {
                    let target = r.link.as_deref().unwrap_or_default();
                    prop_assert!(!target.starts_with(b"/"));
                    prop_assert!(resolve(&p.path, target).is_some(), "{:?} escapes", p.path);
                }
            }
        }
    }
}
