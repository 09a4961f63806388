//! Every service as its own process. (Filled in below.)
