//! Test vocabulary shared by the unpack tests: the modes entries are written with, and the one
//! modification time they all carry.

use async_zip::{ZipDateTime, ZipDateTimeBuilder};

use super::entry::{S_IFDIR, S_IFLNK, S_IFREG};

pub(super) const FILE: u32 = S_IFREG | 0o644;
pub(super) const DIR: u32 = S_IFDIR | 0o755;
pub(super) const LINK: u32 = S_IFLNK | 0o777;
pub(super) const CHAR_DEVICE: u32 = 0o020_644;
pub(super) const FIFO: u32 = 0o010_644;
pub(super) const SOCKET: u32 = 0o140_644;
/// 2021-03-14 15:09:26 UTC: the modification time of every entry these tests write.
pub(super) const MTIME_SECS: u64 = 1_615_734_566;

pub(super) fn test_mtime() -> ZipDateTime {
    let date = ZipDateTimeBuilder::new().year(2021).month(3).day(14);
    date.hour(15).minute(9).second(26).build()
}
