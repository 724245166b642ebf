//! The mount daemon: the fuser adapter over the filesystem core, mounting and serving, the
//! control channel through which client work reaches a live mount, the status files `tutela
//! status` reads, the mount(8) helper's argument translation, and logging.

pub mod adapter;
pub mod control;
pub mod fstab;
pub mod live;
pub mod logging;
pub mod mount;
pub mod status;
