//! `fermyon:spin/key-value@2.0.0` (Spin SDK 5): synchronous to the guest,
//! asynchronous on the host so the serving thread never waits for a disk.

use wasmtime::component::Resource;

use super::{Failure, KeyValueView, OpenStore};
use crate::host::bindings::fermyon::spin::key_value::{Error, Host, HostStore};

type Outcome<T> = wasmtime::Result<Result<T, Error>>;

fn to_error(failure: Failure) -> Error {
    match failure {
        Failure::NoSuchStore => Error::NoSuchStore,
        Failure::AccessDenied => Error::AccessDenied,
        Failure::Other(message) => Error::Other(message),
    }
}

impl KeyValueView<'_> {
    fn store_of(&self, handle: &Resource<OpenStore>) -> wasmtime::Result<super::Backend> {
        Ok(self.table.get(handle)?.store.clone())
    }
}

impl Host for KeyValueView<'_> {}

impl HostStore for KeyValueView<'_> {
    async fn open(&mut self, label: String) -> Outcome<Resource<OpenStore>> {
        match self.key_value.open(&label) {
            Ok(store) => Ok(Ok(self.table.push(OpenStore { store })?)),
            Err(failure) => Ok(Err(to_error(failure))),
        }
    }

    async fn get(&mut self, handle: Resource<OpenStore>, key: String) -> Outcome<Option<Vec<u8>>> {
        let store = self.store_of(&handle)?;
        Ok(store.get(key).await.map_err(to_error))
    }

    async fn set(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Outcome<()> {
        if let Err(f) = self
            .key_value
            .check_key(&key)
            .and_then(|()| self.key_value.check_value(&value))
        {
            return Ok(Err(to_error(f)));
        }
        let store = self.store_of(&handle)?;
        Ok(store.set(key, value).await.map_err(to_error))
    }

    async fn delete(&mut self, handle: Resource<OpenStore>, key: String) -> Outcome<()> {
        let store = self.store_of(&handle)?;
        Ok(store.delete(key).await.map_err(to_error))
    }

    async fn exists(&mut self, handle: Resource<OpenStore>, key: String) -> Outcome<bool> {
        let store = self.store_of(&handle)?;
        Ok(store.exists(key).await.map_err(to_error))
    }

    async fn get_keys(&mut self, handle: Resource<OpenStore>) -> Outcome<Vec<String>> {
        let store = self.store_of(&handle)?;
        Ok(store.keys().await.map_err(to_error))
    }

    async fn drop(&mut self, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
