//! The real `openstack` CLI against `nova-all`. (Filled in below.)
