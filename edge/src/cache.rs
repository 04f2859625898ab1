//! The routing-table cache file: the last table as protobuf bytes, so a restarted edge can serve
//! before (or without) reaching the control plane.

use std::path::{Path, PathBuf};

use prost::Message;
use switchyard_proto::v1;

use crate::error::Error;

/// Reads the cached table; `Ok(None)` when no cache file exists yet.
pub fn load(path: &Path) -> Result<Option<v1::RoutingTable>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::CacheRead {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    v1::RoutingTable::decode(bytes.as_slice())
        .map(Some)
        .map_err(|e| Error::CacheRead {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Writes the table to a temporary file beside `path`, then renames it over `path`, so a crash
/// mid-write never leaves a torn cache.
pub async fn store(path: &Path, table: &v1::RoutingTable) -> Result<(), Error> {
    let write_err = |source| Error::CacheWrite {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(write_err)?;
    }
    let tmp = temp_path(path);
    tokio::fs::write(&tmp, table.encode_to_vec())
        .await
        .map_err(write_err)?;
    tokio::fs::rename(&tmp, path).await.map_err(write_err)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn store_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("table.pb");
        assert!(load(&path).unwrap().is_none());
        let table = v1::RoutingTable {
            version: 9,
            models: vec![v1::ModelRoute {
                name: "m".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        store(&path, &table).await.unwrap();
        assert_eq!(load(&path).unwrap(), Some(table));
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn corrupt_cache_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.pb");
        std::fs::write(&path, b"\xff\xff\xff garbage").unwrap();
        assert!(matches!(load(&path), Err(Error::CacheRead { .. })));
    }
}
