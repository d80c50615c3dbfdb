//! Careful edits of the agents' files: a JSON object is merged key by key (everything else
//! in it stays), text is edited in place, and every write is atomic and private: a 0600
//! temporary file in the same directory, fsynced, renamed over the file a symlink points to.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde_json::{Map, Value};

pub(super) type Object = Map<String, Value>;

/// Applies `edit` to the JSON object in `path` (`{}` when the file is missing or empty) and
/// writes it back if anything changed. A file that is not a JSON object is left alone.
pub(super) fn edit_json(
    path: &Path,
    edit: impl FnOnce(&mut Object) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let old = read(path)?;
    let mut object = match old.as_deref().map(str::trim) {
        None | Some("") => Object::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => bail!("{}: not a JSON object; left as it is", path.display()),
            Err(e) => bail!("{}: not valid JSON ({e}); left as it is", path.display()),
        },
    };
    let before = object.clone();
    edit(&mut object).with_context(|| path.display().to_string())?;
    if old.is_some() && object == before {
        return Ok(());
    }
    let mut text = serde_json::to_string_pretty(&object)?;
    text.push('\n');
    write_private(path, text.as_bytes())
}

/// Applies `edit` to the text in `path` (empty when missing) and writes it back if it changed.
pub(super) fn edit_text(
    path: &Path,
    edit: impl FnOnce(&str) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let old = read(path)?;
    let new = edit(old.as_deref().unwrap_or("")).with_context(|| path.display().to_string())?;
    if old.as_deref() == Some(new.as_str()) {
        return Ok(());
    }
    write_private(path, new.as_bytes())
}

fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

/// Replaces the file at `path` (or the one it links to) with `contents` in one step, so a
/// reader sees the old file or the new one, never a part.
pub(super) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let target = follow_links(path);
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let context = || target.display().to_string();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(context)?;
    // tempfile creates the file 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".catty-")
        .tempfile_in(dir)
        .with_context(context)?;
    file.write_all(contents).with_context(context)?;
    file.as_file().sync_all().with_context(context)?;
    file.persist(&target)
        .map_err(|e| e.error)
        .with_context(context)?;
    // The rename is durable once the directory is; losing that is not worth failing for.
    let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// The file a chain of symlinks ends at (dotfiles are often links into a repository); the
/// path itself when it is no link.
fn follow_links(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // As many hops as the kernel allows (MAXSYMLINKS).
    for _ in 0..40 {
        match fs::read_link(&path) {
            Ok(target) => path = path.parent().unwrap_or(Path::new("/")).join(target),
            Err(_) => break,
        }
    }
    path
}

/// The object under `key`, created empty when missing.
pub(super) fn object<'a>(map: &'a mut Object, key: &str) -> anyhow::Result<&'a mut Object> {
    match map
        .entry(key)
        .or_insert_with(|| Value::Object(Object::new()))
    {
        Value::Object(object) => Ok(object),
        _ => bail!("{key:?} is not a JSON object"),
    }
}

/// The array under `key`, created empty when missing.
pub(super) fn array<'a>(map: &'a mut Object, key: &str) -> anyhow::Result<&'a mut Vec<Value>> {
    match map.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(array) => Ok(array),
        _ => bail!("{key:?} is not a JSON array"),
    }
}

/// Sets `key` unless it is there already (a choice of the user's wins).
pub(super) fn default(map: &mut Object, key: &str, value: impl Into<Value>) {
    map.entry(key).or_insert_with(|| value.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_are_private_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/file.json");
        edit_json(&path, |o| {
            o.insert("a".into(), 1.into());
            Ok(())
        })
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\n  \"a\": 1\n}\n");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file.json"]);
    }

    #[test]
    fn a_symlinked_file_is_written_where_it_points() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("dotfiles")).unwrap();
        fs::write(dir.path().join("dotfiles/conf.json"), "{\"mine\": true}").unwrap();
        let link = dir.path().join("conf.json");
        std::os::unix::fs::symlink("dotfiles/conf.json", &link).unwrap();
        edit_json(&link, |o| {
            o.insert("added".into(), true.into());
            Ok(())
        })
        .unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        let merged: Value = serde_json::from_str(
            &fs::read_to_string(dir.path().join("dotfiles/conf.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(merged, serde_json::json!({"mine": true, "added": true}));
    }

    #[test]
    fn a_file_that_is_not_an_object_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        for (text, expect) in [("[1]", "not a JSON object"), ("{oops", "not valid JSON")] {
            let path = dir.path().join("f.json");
            fs::write(&path, text).unwrap();
            let err = edit_json(&path, |_| Ok(())).unwrap_err();
            assert!(format!("{err:#}").contains(expect), "{err:#}");
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
        let path = dir.path().join("g.json");
        fs::write(&path, "{\"projects\": 3}").unwrap();
        let err = edit_json(&path, |o| object(o, "projects").map(drop)).unwrap_err();
        assert!(format!("{err:#}").contains("\"projects\" is not a JSON object"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"projects\": 3}");
    }

    #[test]
    fn an_unchanged_file_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        fs::write(&path, "{ \"a\" : 1 }").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        edit_json(&path, |o| {
            default(o, "a", 2);
            Ok(())
        })
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{ \"a\" : 1 }");
        assert_eq!(mode(&path), 0o644);
    }
}
