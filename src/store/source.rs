//! An image of the store read through [`ImageSource`] (for save and push).

use std::io::{BufReader, Read};

use oci_spec::image::ImageManifest;

use super::{ImageRecord, Store, StoreError};
use crate::image::{Digest, ImageError, ImageSource};

/// One image of a [`Store`], readable as an [`ImageSource`].
#[derive(Debug)]
pub struct StoreImage<'a> {
    store: &'a Store,
    manifest_digest: Digest,
    config_digest: Digest,
    /// A manifest that replaces the stored one (layers compressed on the way out).
    manifest: Option<Vec<u8>>,
}

impl<'a> StoreImage<'a> {
    pub(super) fn new(store: &'a Store, image: &ImageRecord) -> StoreImage<'a> {
        StoreImage {
            store,
            manifest_digest: image.manifest_digest.clone(),
            config_digest: image.id.clone(),
            manifest: None,
        }
    }

    /// The same image with another manifest (its blobs must be in the store).
    pub(super) fn with_manifest(mut self, bytes: Vec<u8>) -> StoreImage<'a> {
        self.manifest = Some(bytes);
        self
    }
}

fn to_image_error(e: StoreError) -> ImageError {
    match e {
        StoreError::MissingBlob(d) => ImageError::MissingBlob(d),
        StoreError::Io {
            path,
            error: source,
        } => ImageError::Io(std::io::Error::new(
            source.kind(),
            format!("`{}`: {source}", path.display()),
        )),
        other => ImageError::Invalid {
            what: "store image".into(),
            reason: other.to_string(),
        },
    }
}

impl ImageSource for StoreImage<'_> {
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError> {
        let bytes = match &self.manifest {
            Some(b) => b.clone(),
            None => self
                .store
                .read_blob(&self.manifest_digest)
                .map_err(to_image_error)?,
        };
        let m = serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid {
            what: format!("manifest `{}`", self.manifest_digest),
            reason: e.to_string(),
        })?;
        Ok((bytes, m))
    }

    fn config(&self) -> Result<Vec<u8>, ImageError> {
        self.store
            .read_blob(&self.config_digest)
            .map_err(to_image_error)
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, ImageError> {
        // keep collections away while a blob is being read
        if self.store.tmp.is_some() {
            self.store.hold_gc_shared().map_err(to_image_error)?;
        }
        let f = self.store.open_blob(digest).map_err(to_image_error)?;
        Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
    }
}
