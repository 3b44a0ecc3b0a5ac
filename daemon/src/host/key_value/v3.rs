//! `spin:key-value/key-value@3.0.0` (Spin SDK 6/7, Python SDK 4/5): async
//! functions with access to the store; keys come back as a stream.

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{Failure, KeyValueCapability, OpenStore};
use crate::host::bindings::spin::key_value::key_value::{
    Error, Host, HostStore, HostStoreWithStore,
};

fn to_error(failure: Failure) -> Error {
    match failure {
        Failure::NoSuchStore => Error::NoSuchStore,
        Failure::AccessDenied => Error::AccessDenied,
        Failure::Other(message) => Error::Other(message),
    }
}

fn store_of<T>(
    accessor: &Accessor<T, KeyValueCapability>,
    handle: &Resource<OpenStore>,
) -> Result<super::Backend, Error> {
    accessor
        .with(|mut access| {
            access
                .get()
                .table
                .get(handle)
                .map(|open| open.store.clone())
        })
        .map_err(|e| Error::Other(format!("not an open store: {e}")))
}

impl Host for super::KeyValueView<'_> {}

impl HostStore for super::KeyValueView<'_> {
    fn drop(&mut self, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl<T> HostStoreWithStore<T> for KeyValueCapability {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> Result<Resource<OpenStore>, Error> {
        accessor.with(|mut access| {
            let view = access.get();
            let store = view.key_value.open(&label).map_err(to_error)?;
            view.table
                .push(OpenStore { store })
                .map_err(|_| Error::StoreTableFull)
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        let store = store_of(accessor, &handle)?;
        store.get(key).await.map_err(to_error)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        accessor
            .with(|mut access| {
                let kv = access.get().key_value;
                kv.check_key(&key).and_then(|()| kv.check_value(&value))
            })
            .map_err(to_error)?;
        let store = store_of(accessor, &handle)?;
        store.set(key, value).await.map_err(to_error)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
    ) -> Result<(), Error> {
        let store = store_of(accessor, &handle)?;
        store.delete(key).await.map_err(to_error)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, Error> {
        let store = store_of(accessor, &handle)?;
        store.exists(key).await.map_err(to_error)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        // Keys are read in one query and streamed from memory: stores here
        // are small, and one snapshot gives the guest a consistent listing.
        let listed = match store_of(accessor, &handle) {
            Ok(store) => store.keys().await.map_err(to_error),
            Err(e) => Err(e),
        };
        let (keys, outcome) = match listed {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let future =
                FutureReader::new(&mut access, async move { wasmtime::error::Ok(outcome) })?;
            Ok((stream, future))
        })
    }
}
