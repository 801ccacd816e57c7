//! Items inside frames: a few typed fields end to end, written and read in
//! the same order by the pillar that owns the kind.
//!
//! ```text
//! i64    = 8 bytes, little-endian
//! str    = len:u32le  utf8[len]
//! opt    = 0 | 1 str
//! bytes  = len:u32le  bytes[len]
//! ```

/// Builds one item.
#[derive(Default)]
pub struct ItemWriter {
    bytes: Vec<u8>,
}

impl ItemWriter {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
        }
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.bytes
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub fn opt(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            None => {
                self.bytes.push(0);
                self
            }
            Some(text) => {
                self.bytes.push(1);
                self.str(text)
            }
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Why an item cannot be read: it was written by another layout, or is
/// damaged (the frame's checksum makes the latter unlikely).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a log item is malformed at byte {at}")]
pub struct ItemError {
    pub at: usize,
}

/// Reads one item's fields in order.
pub struct ItemReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ItemReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ItemError> {
        let slice = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or(ItemError { at: self.at })?;
        self.at += n;
        Ok(slice)
    }

    pub fn i64(&mut self) -> Result<i64, ItemError> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("eight bytes"),
        ))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], ItemError> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("four bytes")) as usize;
        self.take(len)
    }

    pub fn str(&mut self) -> Result<&'a str, ItemError> {
        let at = self.at;
        std::str::from_utf8(self.bytes()?).map_err(|_| ItemError { at })
    }

    pub fn opt(&mut self) -> Result<Option<&'a str>, ItemError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(ItemError { at: self.at - 1 }),
        }
    }

    /// Whether every byte was read: an item with bytes left over is not of
    /// the layout being read.
    pub fn end(&self) -> Result<(), ItemError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(ItemError { at: self.at })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fields_read_back_as_written(
            n in any::<i64>(),
            text in ".{0,20}",
            option in proptest::option::of(".{0,10}"),
            raw in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut writer = ItemWriter::default();
            writer.i64(n).str(&text).opt(option.as_deref()).bytes(&raw);
            let bytes = writer.finish();
            let mut reader = ItemReader::new(&bytes);
            prop_assert_eq!(reader.i64().unwrap(), n);
            prop_assert_eq!(reader.str().unwrap(), text.as_str());
            prop_assert_eq!(reader.opt().unwrap(), option.as_deref());
            prop_assert_eq!(reader.bytes().unwrap(), raw.as_slice());
            prop_assert!(reader.end().is_ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut reader = ItemReader::new(&bytes);
            let _ = reader.i64().and_then(|_| reader.str()).and_then(|_| reader.opt());
        }
    }
}
