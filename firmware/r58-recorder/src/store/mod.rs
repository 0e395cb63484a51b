//! What is kept on the data partition: recording sessions, the disk space policy, and
//! safe path components.

pub mod paths;
pub mod sessions;
pub mod storage;
