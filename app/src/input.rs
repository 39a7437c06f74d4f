//! The UE's input flow: the datagram format lives in [`wire::input`]
//! (the UE sends it, the application takes it); re-exported here.

pub use wire::input::{Dir, Flags, Input, InputError, LEN};
