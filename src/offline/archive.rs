//! Archive files for `client export`: plain tar, gzip or zstd, chosen by the output's name.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// What an output path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tar,
    TarGz,
    TarZst,
    /// No archive suffix: a folder.
    Folder,
}

/// The suffixes an archive may have, longest first.
const SUFFIXES: &[(&str, Kind)] = &[
    (".tar.gz", Kind::TarGz),
    (".tgz", Kind::TarGz),
    (".tar.zst", Kind::TarZst),
    (".tzst", Kind::TarZst),
    (".tar", Kind::Tar),
];

/// The kind of output `path` names. An existing folder is a folder whatever its name; a new
/// name with a suffix must be a known archive suffix (`acme.tar.gz` once silently became a
/// folder named so).
pub fn kind_of(path: &Path) -> Result<Kind> {
    if path.is_dir() {
        return Ok(Kind::Folder);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if let Some((_, k)) = SUFFIXES.iter().find(|(s, _)| name.ends_with(s)) {
        return Ok(*k);
    }
    match Path::new(&name).extension() {
        None => Ok(Kind::Folder),
        Some(ext) => Err(Error::Usage(format!(
            "'{}': unknown archive suffix '.{}' (accepted: .tar, .tar.gz or .tgz, .tar.zst or \
             .tzst; or a folder name without a suffix)",
            crate::text::escape(&path.display().to_string()),
            crate::text::escape(&ext.to_string_lossy())
        ))),
    }
}

/// An archive file being written, compressed or not.
pub enum Writer {
    Plain(File),
    Gz(flate2::write::GzEncoder<File>),
    Zst(zstd::Encoder<'static, File>),
}

impl Writer {
    pub fn new(kind: Kind, f: File) -> Result<Writer> {
        Ok(match kind {
            Kind::TarGz => Writer::Gz(flate2::write::GzEncoder::new(
                f,
                flate2::Compression::default(),
            )),
            Kind::TarZst => Writer::Zst(zstd::Encoder::new(f, 3)?),
            Kind::Tar | Kind::Folder => Writer::Plain(f),
        })
    }

    /// Ends the compressed stream and makes the file durable.
    pub fn finish(self) -> Result<()> {
        let f = match self {
            Writer::Plain(f) => f,
            Writer::Gz(g) => g.finish()?,
            Writer::Zst(z) => z.finish()?,
        };
        f.sync_all()?;
        Ok(())
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Writer::Plain(f) => f.write(buf),
            Writer::Gz(g) => g.write(buf),
            Writer::Zst(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Plain(f) => f.flush(),
            Writer::Gz(g) => g.flush(),
            Writer::Zst(z) => z.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_choose_the_archive_and_unknown_ones_are_refused() {
        assert_eq!(kind_of(Path::new("/x/acme.tar")).unwrap(), Kind::Tar);
        assert_eq!(kind_of(Path::new("/x/acme.tar.gz")).unwrap(), Kind::TarGz);
        assert_eq!(kind_of(Path::new("/x/acme.TGZ")).unwrap(), Kind::TarGz);
        assert_eq!(kind_of(Path::new("/x/acme.tar.zst")).unwrap(), Kind::TarZst);
        assert_eq!(kind_of(Path::new("/x/acme-export")).unwrap(), Kind::Folder);
        let e = kind_of(Path::new("/x/acme.zip")).unwrap_err().to_string();
        assert!(e.contains("'.zip'") && e.contains(".tar.gz"), "{e}");
        // An existing folder is a folder, whatever its name.
        assert_eq!(kind_of(&std::env::temp_dir()).unwrap(), Kind::Folder);
    }
}
