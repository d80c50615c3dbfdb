//! The decision for one path, from three versions: the base (what the local file is known to
//! equal), the session's and the local one. The user's own work is never overwritten: a
//! remote change applies only where the local file still equals the base.

use crate::protocol::sync::EntryKind;

/// What is at a path in the local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Local {
    Absent,
    Entry(EntryKind),
    /// Something sync never writes over (a directory, a device, a symlink above the path),
    /// said in a few words.
    Other(String),
}

impl Local {
    /// The local version as a manifest would have it; `None` for [`Local::Other`].
    fn version(&self) -> Option<Option<&EntryKind>> {
        match self {
            Local::Absent => Some(None),
            Local::Entry(entry) => Some(Some(entry)),
            Local::Other(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// The local file already equals the session's: the base moves to it.
    Adopt,
    /// The local file is untouched since the base: the session's version is written (or the
    /// file deleted), then the base moves.
    Apply,
    /// Both sides changed it: the local version stays, the session's is kept aside.
    Conflict,
    /// The same conflict as already reported: nothing to say again.
    KnownConflict,
}

/// Decides for a path whose session version differs from the base. `reported` is the session
/// version of the last conflict reported for it (`Some(None)`: it was deleted there).
pub(super) fn decide(
    base: Option<&EntryKind>,
    remote: Option<&EntryKind>,
    local: &Local,
    reported: Option<Option<&EntryKind>>,
) -> Decision {
    let local = local.version();
    // The user took the session's version of an earlier conflict: that is the base now.
    let base = match reported {
        Some(theirs) if local == Some(theirs) => theirs,
        _ => base,
    };
    if local == Some(remote) {
        Decision::Adopt
    } else if local == Some(base) {
        Decision::Apply
    } else if reported == Some(remote) {
        Decision::KnownConflict
    } else {
        Decision::Conflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sha: &str) -> EntryKind {
        EntryKind::File {
            executable: false,
            size: 1,
            sha256: sha.into(),
        }
    }

    #[test]
    fn untouched_local_files_take_the_session_version() {
        let (a, b) = (file("a"), file("b"));
        let local = Local::Entry(a.clone());
        assert_eq!(decide(Some(&a), Some(&b), &local, None), Decision::Apply);
        assert_eq!(decide(Some(&a), None, &local, None), Decision::Apply);
        assert_eq!(
            decide(None, Some(&b), &Local::Absent, None),
            Decision::Apply
        );
    }

    #[test]
    fn equal_local_files_only_move_the_base() {
        let (a, b) = (file("a"), file("b"));
        let local = Local::Entry(b.clone());
        assert_eq!(decide(Some(&a), Some(&b), &local, None), Decision::Adopt);
        assert_eq!(
            decide(Some(&a), None, &Local::Absent, None),
            Decision::Adopt
        );
    }

    #[test]
    fn changes_on_both_sides_conflict() {
        let (a, b, c) = (file("a"), file("b"), file("c"));
        let edited = Local::Entry(c.clone());
        assert_eq!(
            decide(Some(&a), Some(&b), &edited, None),
            Decision::Conflict
        );
        assert_eq!(decide(Some(&a), None, &edited, None), Decision::Conflict);
        let deleted = Local::Absent;
        assert_eq!(
            decide(Some(&a), Some(&b), &deleted, None),
            Decision::Conflict
        );
        // No base (another machine's session): a differing local file is never overwritten.
        assert_eq!(decide(None, Some(&b), &edited, None), Decision::Conflict);
        let dir = Local::Other("a directory".into());
        assert_eq!(decide(None, Some(&b), &dir, None), Decision::Conflict);
    }

    #[test]
    fn a_conflict_is_reported_once_per_session_version() {
        let (a, b, c) = (file("a"), file("b"), file("c"));
        let edited = Local::Entry(c);
        let known = decide(Some(&a), Some(&b), &edited, Some(Some(&b)));
        assert_eq!(known, Decision::KnownConflict);
        assert_eq!(decide(Some(&a), None, &edited, Some(None)), known);
        let newer = decide(Some(&a), Some(&b), &edited, Some(Some(&a)));
        assert_eq!(newer, Decision::Conflict);
    }

    #[test]
    fn taking_the_session_side_of_a_conflict_makes_it_the_base() {
        let (a, b, c) = (file("a"), file("b"), file("c"));
        let took = Local::Entry(b.clone());
        assert_eq!(
            decide(Some(&a), Some(&c), &took, Some(Some(&b))),
            Decision::Apply
        );
    }
}
