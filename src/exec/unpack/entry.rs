//! One central-directory entry as validation and extraction see it: its kind, mode, size and
//! time, read from the record's headers (`st_mode` only when the zipping host was Unix).

use std::time::{Duration, SystemTime};

use async_zip::spec::constructs::CDR;
use async_zip::spec::extra::{EF, EFD, EFHID};
use async_zip::spec::headers1::Compression;

const S_IFMT: u32 = 0o170_000;
pub(super) const S_IFREG: u32 = 0o100_000;
pub(super) const S_IFDIR: u32 = 0o040_000;
pub(super) const S_IFLNK: u32 = 0o120_000;
/// `version made by` host byte for Unix: only then do the external attributes hold `st_mode`.
const HOST_UNIX: u16 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
}

/// One central-directory entry, as far as validation and extraction care.
#[derive(Debug, Clone)]
pub(super) struct CentralEntry {
    pub(super) name: Vec<u8>,
    /// `st_mode` from Unix external attributes; 0 when the archive has none.
    pub(super) mode: u32,
    pub(super) size: u64,
    pub(super) mtime: Option<SystemTime>,
    /// A symlink entry's data: its target.
    pub(super) link: Option<Vec<u8>>,
    /// Found while reading the entry (unsupported compression, unreadable link data, ...).
    pub(super) problem: Option<String>,
}

pub(super) fn kind_of(name: &[u8], mode: u32) -> Result<Kind, String> {
    match mode & S_IFMT {
        S_IFDIR => Ok(Kind::Dir),
        S_IFLNK => Ok(Kind::Symlink),
        0 | S_IFREG if name.ends_with(b"/") => Ok(Kind::Dir),
        0 | S_IFREG => Ok(Kind::File),
        other => Err(format!(
            "special file (type {other:06o}): only files, directories and symlinks"
        )),
    }
}

/// Permission bits to apply; setuid, setgid and sticky are dropped on purpose.
pub(super) fn permissions(kind: Kind, mode: u32) -> u32 {
    match (mode, kind) {
        (0, Kind::Dir) => 0o755,
        (0, _) => 0o644,
        _ => mode & 0o777,
    }
}

/// DOS date and time (the zipping machine's local time, taken as UTC); None when invalid.
fn dos_time(date: u16, time: u16) -> Option<SystemTime> {
    let (year, month, day) = (
        1980 + i64::from(date >> 9),
        i64::from(date >> 5 & 0xF),
        i64::from(date & 0x1F),
    );
    let (hour, minute, second) = (
        u64::from(time >> 11),
        u64::from(time >> 5 & 0x3F),
        u64::from(time & 0x1F) * 2,
    );
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01, after Howard Hinnant's days_from_civil (years here are >= 1980).
    let y = if month <= 2 { year - 1 } else { year };
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = y * 365 + y / 4 - y / 100 + y / 400 + doy - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

pub(super) fn record(cdr: &CDR) -> CentralEntry {
    let h = &cdr.cdrh;
    let mode = if h.v_made_by >> 8 == HOST_UNIX {
        h.exter_attr >> 16
    } else {
        0
    };
    let mut problem = None;
    if !matches!(h.compression, Compression::Stored | Compression::Deflate) {
        problem = Some(format!("unsupported compression {:?}", h.compression));
    }
    // CDR::lfh_offset unwraps a missing zip64 offset: refuse it here rather than panic later.
    let ei64_offset = cdr.find_ef(EFHID::EI64).and_then(|ef| match ef {
        EF {
            efd: EFD::EI64(ei), ..
        } => ei.relative_offset,
        _ => None,
    });
    if h.lfh_offset == u32::MAX && ei64_offset.is_none() {
        problem = Some("zip64 extra field lacks the local header offset".into());
    }
    let size = cdr.uncompressed_size().unwrap_or_else(|err| {
        problem = Some(err.to_string());
        0
    });
    let name = cdr.insecure_file_name.as_bytes().to_vec();
    let mtime = dos_time(h.mod_date, h.mod_time);
    CentralEntry {
        name,
        mode,
        size,
        mtime,
        link: None,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::unpack::testing::{CHAR_DEVICE, FIFO, LINK, MTIME_SECS, SOCKET, test_mtime};
    use async_zip::{ZipDateTime, ZipDateTimeBuilder};

    #[test]
    fn kinds_and_permissions_come_from_the_mode() {
        assert_eq!(kind_of(b"a", 0), Ok(Kind::File));
        assert_eq!(kind_of(b"a/", 0), Ok(Kind::Dir));
        assert_eq!(kind_of(b"a", S_IFDIR | 0o755), Ok(Kind::Dir));
        assert_eq!(kind_of(b"a", LINK), Ok(Kind::Symlink));
        for mode in [CHAR_DEVICE, FIFO, SOCKET, 0o060_644] {
            assert!(
                kind_of(b"a", mode).unwrap_err().starts_with("special file"),
                "{mode:o}"
            );
        }
        assert_eq!(permissions(Kind::File, 0), 0o644);
        assert_eq!(permissions(Kind::Dir, 0), 0o755);
        assert_eq!(permissions(Kind::File, S_IFREG | 0o4755), 0o755);
        assert_eq!(permissions(Kind::Dir, S_IFDIR | 0o1777), 0o777);
    }

    #[test]
    fn dos_times_are_read_as_utc() {
        let at = |secs| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let dos = |d: ZipDateTime| dos_time(d_date(&d), d_time(&d));
        assert_eq!(dos(test_mtime()), at(MTIME_SECS));
        let leap = ZipDateTimeBuilder::new()
            .year(2000)
            .month(2)
            .day(29)
            .hour(23)
            .minute(59);
        assert_eq!(dos(leap.second(58).build()), at(951_868_798));
        assert_eq!(dos_time(0x0021, 0), at(315_532_800)); // 1980-01-01
        assert_eq!(dos_time(0, 0), None);
        assert_eq!(dos_time(0x0021, 24 << 11), None);
    }

    /// ZipDateTime hides its fields; its accessors give them back.
    fn d_date(d: &ZipDateTime) -> u16 {
        ((d.year() - 1980) as u16) << 9 | (d.month() as u16) << 5 | d.day() as u16
    }

    fn d_time(d: &ZipDateTime) -> u16 {
        (d.hour() as u16) << 11 | (d.minute() as u16) << 5 | (d.second() / 2) as u16
    }
}
