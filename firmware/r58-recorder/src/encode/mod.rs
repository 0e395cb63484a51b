//! Encode: one encode pipeline per input (with the "no signal" slate while the source is
//! down), its encoder choice, and the fan-out of encoded buffers to the outputs.

pub mod encoder;
pub mod fanout;
pub mod input;
pub mod slate;
