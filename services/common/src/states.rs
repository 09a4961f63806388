//! An instance's states (`nova/compute/vm_states.py`, `task_states.py`,
//! `power_state.py`) and the API status each pair shows
//! (`nova/api/openstack/common.py` `_STATE_MAP`): the only place their
//! strings are written.
//!
//! ```
//! use nova_service::states::{TaskState, VmState, status};
//! assert_eq!(VmState::SoftDeleted.as_str(), "soft-delete");
//! assert_eq!("powering-off".parse::<TaskState>(), Ok(TaskState::PoweringOff));
//! assert_eq!(status(Some(VmState::Active), Some(TaskState::RebootingHard)), "HARD_REBOOT");
//! ```

use std::fmt;
use std::str::FromStr;

pub use nova_virt::PowerState;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant,)* }

        impl $name {
            /// Every value, in nova's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// Nova's string.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s,)* }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($s => Ok($name::$variant),)*
                    _ => Err(UnknownState(s.to_owned())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_owned()
            }
        }

        impl PartialEq<$name> for Option<String> {
            fn eq(&self, other: &$name) -> bool {
                self.as_deref() == Some(other.as_str())
            }
        }
    };
}

/// A string that names no known state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown state '{}'", self.0)
    }
}

impl std::error::Error for UnknownState {}

string_enum! {
    /// `vm_state`: what the instance is.
    VmState {
        /// Running (or paused by the hypervisor for a moment).
        Active = "active",
        /// Being built.
        Building = "building",
        /// Paused.
        Paused = "paused",
        /// Suspended to disk.
        Suspended = "suspended",
        /// Powered off.
        Stopped = "stopped",
        /// In rescue mode.
        Rescued = "rescued",
        /// Resized, waiting for confirm or revert.
        Resized = "resized",
        /// Deleted but reclaimable (`reclaim_instance_interval`).
        SoftDeleted = "soft-delete",
        /// Deleted.
        Deleted = "deleted",
        /// Failed; a fault says why.
        Error = "error",
        /// Shelved, still on its host.
        Shelved = "shelved",
        /// Shelved and removed from its host.
        ShelvedOffloaded = "shelved_offloaded",
    }
}

string_enum! {
    /// `task_state`: what is being done to the instance.
    TaskState {
        /// Waiting for the scheduler.
        Scheduling = "scheduling",
        /// Attaching block devices.
        BlockDeviceMapping = "block_device_mapping",
        /// Allocating networks.
        Networking = "networking",
        /// The hypervisor is creating the guest.
        Spawning = "spawning",
        /// Snapshot requested.
        ImageSnapshot = "image_snapshot",
        /// Snapshot waiting for the hypervisor.
        ImageSnapshotPending = "image_snapshot_pending",
        /// Snapshot waiting to upload.
        ImagePendingUpload = "image_pending_upload",
        /// Snapshot uploading.
        ImageUploading = "image_uploading",
        /// Backup requested.
        ImageBackup = "image_backup",
        /// Setting the admin password.
        UpdatingPassword = "updating_password",
        /// Resize: preparing.
        ResizePrep = "resize_prep",
        /// Resize: moving disks.
        ResizeMigrating = "resize_migrating",
        /// Resize: disks moved.
        ResizeMigrated = "resize_migrated",
        /// Resize: finishing on the destination.
        ResizeFinish = "resize_finish",
        /// Resize: reverting.
        ResizeReverting = "resize_reverting",
        /// Resize: confirming.
        ResizeConfirming = "resize_confirming",
        /// Soft reboot requested.
        Rebooting = "rebooting",
        /// Soft reboot sent to the hypervisor.
        RebootPending = "reboot_pending",
        /// Soft reboot started.
        RebootStarted = "reboot_started",
        /// Hard reboot requested.
        RebootingHard = "rebooting_hard",
        /// Hard reboot sent to the hypervisor.
        RebootPendingHard = "reboot_pending_hard",
        /// Hard reboot started.
        RebootStartedHard = "reboot_started_hard",
        /// Pausing.
        Pausing = "pausing",
        /// Unpausing.
        Unpausing = "unpausing",
        /// Suspending.
        Suspending = "suspending",
        /// Resuming.
        Resuming = "resuming",
        /// Powering off.
        PoweringOff = "powering-off",
        /// Powering on.
        PoweringOn = "powering-on",
        /// Entering rescue.
        Rescuing = "rescuing",
        /// Leaving rescue.
        Unrescuing = "unrescuing",
        /// Rebuild requested.
        Rebuilding = "rebuilding",
        /// Rebuild: block devices.
        RebuildBlockDeviceMapping = "rebuild_block_device_mapping",
        /// Rebuild: spawning.
        RebuildSpawning = "rebuild_spawning",
        /// Live migration.
        Migrating = "migrating",
        /// Being deleted.
        Deleting = "deleting",
        /// Being soft-deleted.
        SoftDeleting = "soft-deleting",
        /// Being restored from soft delete.
        Restoring = "restoring",
        /// Shelving.
        Shelving = "shelving",
        /// Shelving: snapshot waiting to upload.
        ShelvingImagePendingUpload = "shelving_image_pending_upload",
        /// Shelving: snapshot uploading.
        ShelvingImageUploading = "shelving_image_uploading",
        /// Shelving: leaving the host.
        ShelvingOffloading = "shelving_offloading",
        /// Unshelving.
        Unshelving = "unshelving",
    }
}

impl TaskState {
    /// The states of a build before the guest exists on a host
    /// (what a compute restarting mid-build finds).
    pub const BUILDING: &'static [TaskState] = &[
        TaskState::Scheduling,
        TaskState::BlockDeviceMapping,
        TaskState::Networking,
        TaskState::Spawning,
    ];

    /// The soft-reboot states.
    pub const SOFT_REBOOT: &'static [TaskState] = &[
        TaskState::Rebooting,
        TaskState::RebootPending,
        TaskState::RebootStarted,
    ];

    /// The hard-reboot states.
    pub const HARD_REBOOT: &'static [TaskState] = &[
        TaskState::RebootingHard,
        TaskState::RebootPendingHard,
        TaskState::RebootStartedHard,
    ];

    /// The rebuild states.
    pub const REBUILD: &'static [TaskState] = &[
        TaskState::Rebuilding,
        TaskState::RebuildBlockDeviceMapping,
        TaskState::RebuildSpawning,
    ];

    /// The resize states before `resized`.
    pub const RESIZE: &'static [TaskState] = &[
        TaskState::ResizePrep,
        TaskState::ResizeMigrating,
        TaskState::ResizeMigrated,
        TaskState::ResizeFinish,
    ];

    /// A reboot of either kind.
    pub fn is_reboot(self) -> bool {
        Self::SOFT_REBOOT.contains(&self) || Self::HARD_REBOOT.contains(&self)
    }
}

/// The API's `status` of a (vm_state, task_state) pair: nova's `_STATE_MAP`,
/// with `UNKNOWN` for a vm_state it does not know.
pub fn status(vm: Option<VmState>, task: Option<TaskState>) -> &'static str {
    let task_is = |set: &[TaskState]| task.is_some_and(|t| set.contains(&t));
    match vm {
        Some(VmState::Active) => {
            if task_is(TaskState::SOFT_REBOOT) {
                "REBOOT"
            } else if task_is(TaskState::HARD_REBOOT) {
                "HARD_REBOOT"
            } else if task == Some(TaskState::UpdatingPassword) {
                "PASSWORD"
            } else if task_is(TaskState::REBUILD) {
                "REBUILD"
            } else if task == Some(TaskState::Migrating) {
                "MIGRATING"
            } else if task_is(TaskState::RESIZE) {
                "RESIZE"
            } else {
                "ACTIVE"
            }
        }
        Some(VmState::Building) => "BUILD",
        Some(VmState::Stopped) => {
            if task_is(TaskState::RESIZE) {
                "RESIZE"
            } else if task_is(TaskState::REBUILD) {
                "REBUILD"
            } else {
                "SHUTOFF"
            }
        }
        Some(VmState::Resized) => {
            if task == Some(TaskState::ResizeReverting) {
                "REVERT_RESIZE"
            } else {
                "VERIFY_RESIZE"
            }
        }
        Some(VmState::Paused) => {
            if task == Some(TaskState::Migrating) {
                "MIGRATING"
            } else {
                "PAUSED"
            }
        }
        Some(VmState::Suspended) => "SUSPENDED",
        Some(VmState::Rescued) => "RESCUE",
        Some(VmState::Error) => {
            if task_is(TaskState::REBUILD) {
                "REBUILD"
            } else {
                "ERROR"
            }
        }
        Some(VmState::Deleted) => "DELETED",
        Some(VmState::SoftDeleted) => "SOFT_DELETED",
        Some(VmState::Shelved) => "SHELVED",
        Some(VmState::ShelvedOffloaded) => "SHELVED_OFFLOADED",
        None => "UNKNOWN",
    }
}

/// The API status of stored strings (unknown strings read as nova reads
/// them: an unknown vm_state is `UNKNOWN`, an unknown task_state is none).
pub fn status_of(vm: Option<&str>, task: Option<&str>) -> &'static str {
    status(
        vm.and_then(|s| s.parse().ok()),
        task.and_then(|s| s.parse().ok()),
    )
}

/// What a `status` filter of the servers list selects (nova's
/// `task_and_vm_state_from_status`): the vm_states, and the task_states
/// when the status narrows them (`None`: any task state). `None` for a
/// status nova does not know.
pub fn states_of_status(status: &str) -> Option<(Vec<VmState>, Option<Vec<TaskState>>)> {
    let wanted = status.to_ascii_uppercase();
    let mut vms = Vec::new();
    let mut tasks: Vec<TaskState> = Vec::new();
    let mut any_task = false;
    for &vm in VmState::ALL {
        if self::status(Some(vm), None) == wanted {
            vms.push(vm);
            any_task = true;
            continue;
        }
        let hits: Vec<TaskState> = TaskState::ALL
            .iter()
            .copied()
            .filter(|&t| self::status(Some(vm), Some(t)) == wanted)
            .collect();
        if !hits.is_empty() {
            vms.push(vm);
            tasks.extend(hits);
        }
    }
    if vms.is_empty() {
        return None;
    }
    tasks.sort();
    tasks.dedup();
    Some((vms, (!any_task).then_some(tasks)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for v in VmState::ALL {
            assert_eq!(v.as_str().parse::<VmState>().unwrap(), *v);
        }
        for t in TaskState::ALL {
            assert_eq!(t.as_str().parse::<TaskState>().unwrap(), *t);
        }
        assert!("soft_deleted".parse::<VmState>().is_err());
        assert_eq!(Some("stopped".to_owned()), VmState::Stopped);
    }

    #[test]
    fn status_table_matches_nova() {
        assert_eq!(status_of(Some("active"), None), "ACTIVE");
        assert_eq!(status_of(Some("active"), Some("reboot_started")), "REBOOT");
        assert_eq!(status_of(Some("active"), Some("powering-off")), "ACTIVE");
        assert_eq!(status_of(Some("stopped"), Some("resize_prep")), "RESIZE");
        assert_eq!(status_of(Some("error"), Some("rebuilding")), "REBUILD");
        assert_eq!(
            status_of(Some("resized"), Some("resize_reverting")),
            "REVERT_RESIZE"
        );
        assert_eq!(status_of(Some("soft-delete"), None), "SOFT_DELETED");
        assert_eq!(status_of(Some("nonsense"), None), "UNKNOWN");
    }

    #[test]
    fn status_filters_invert_the_table() {
        let (vms, tasks) = states_of_status("shutoff").unwrap();
        assert_eq!(vms, vec![VmState::Stopped]);
        assert_eq!(tasks, None);
        let (vms, tasks) = states_of_status("HARD_REBOOT").unwrap();
        assert_eq!(vms, vec![VmState::Active]);
        assert_eq!(tasks.unwrap(), TaskState::HARD_REBOOT.to_vec());
        let (vms, tasks) = states_of_status("REBUILD").unwrap();
        assert_eq!(vms, vec![VmState::Active, VmState::Stopped, VmState::Error]);
        assert_eq!(tasks.unwrap(), TaskState::REBUILD.to_vec());
        assert!(states_of_status("BANANA").is_none());
    }
}
