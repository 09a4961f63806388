//! Why a move task failed, as nova's conductor tells it: the exception's
//! class, message and keyword arguments (`exc.kwargs`, `code` last),
//! whether nova's `_live_migrate` expects it (the server stays as it was)
//! or not (the server goes to ERROR, nova's `except Exception` branch),
//! and `repr(exc)` for the legacy notification's `reason`.

use nova_rpc::RemoteError;
use nova_service::notifications::legacy::nova_exception_repr;
use serde_json::{Value, json};

/// The exceptions nova's `ComputeTaskManager._live_migrate` expects: the
/// server keeps its vm_state (subclasses included: `MaxRetriesExceeded`,
/// `InstanceIsLocked`, `UnshelveInstanceInvalidState`).
const LIVE_EXPECTED: &[&str] = &[
    "ComputeHostNotFound",
    "ComputeServiceUnavailable",
    "DestinationHypervisorTooOld",
    "HypervisorUnavailable",
    "InstanceInvalidState",
    "InstanceIsLocked",
    "InvalidCPUInfo",
    "InvalidHypervisorType",
    "InvalidLocalStorage",
    "InvalidSharedStorage",
    "MaxRetriesExceeded",
    "MigrationPreCheckError",
    "MigrationSchedulerRPCError",
    "NoValidHost",
    "UnableToMigrateToSelf",
    "UnshelveInstanceInvalidState",
];

/// nova 34's `exception.Invalid` and `MigrationPreCheckError` with their
/// subclasses, sorted: what `LiveMigrationTask._find_destination` takes
/// as a destination's refusal (the next alternate is tried).
const REFUSALS: &[&str] = &[
    "AmbiguousHostnameForMultipleInstances",
    "ApiVersionsIntersect",
    "AttachInterfaceNotSupported",
    "AttachInterfaceWithQoSPolicyNotSupported",
    "AttachSRIOVPortNotSupported",
    "AttachWithExtendedQoSPolicyNotSupported",
    "AutoDiskConfigDisabledByImage",
    "BadRequirementEmulatorThreadsPolicy",
    "CPUPinningInvalid",
    "CPUPinningUnknown",
    "CPUThreadPolicyConfigurationInvalid",
    "CPUUnpinningInvalid",
    "CPUUnpinningUnknown",
    "ComputeResourcesUnavailable",
    "ComputeServiceUnavailable",
    "ConfigDriveInvalidValue",
    "ConfigDriveUnsupportedFormat",
    "ConsoleTypeInvalid",
    "ConsoleTypeUnavailable",
    "CreateWithPortResourceRequestOldVersion",
    "DestinationDiskExists",
    "DestinationHypervisorTooOld",
    "DevicePathInUse",
    "DiskInfoReadWriteFail",
    "EphemeralEncryptionSecretNotFound",
    "ExtendVolumeNotSupported",
    "ExtendedResourceRequestOldCompute",
    "FirmwareSMMNotSupported",
    "FixedIpInvalidOnHost",
    "FloatingIpBadRequest",
    "HostMappingExists",
    "HostMappingNotFound",
    "HypervisorTooOld",
    "ImageBadRequest",
    "ImageImportImpossible",
    "ImageNUMATopologyAsymmetric",
    "ImageNUMATopologyCPUDuplicates",
    "ImageNUMATopologyCPUOutOfRange",
    "ImageNUMATopologyCPUsUnassigned",
    "ImageNUMATopologyIncomplete",
    "ImageNUMATopologyMemoryOutOfRange",
    "ImageNUMATopologyRebuildConflict",
    "ImageSerialPortNumberExceedFlavorValue",
    "ImageSerialPortNumberInvalid",
    "ImageUnacceptable",
    "ImageVCPULimitsRangeExceeded",
    "ImageVCPULimitsRangeImpossible",
    "ImageVCPUTopologyRangeExceeded",
    "InstanceAgentNotEnabled",
    "InstanceDeployFailure",
    "InstanceEvacuateNotSupported",
    "InstanceEvacuateNotSupportedTargetState",
    "InstanceInvalidState",
    "InstanceIsLocked",
    "InstanceNotInRescueMode",
    "InstanceNotReady",
    "InstanceNotRescuable",
    "InstanceNotRunning",
    "InstancePowerOffFailure",
    "InstancePowerOnFailure",
    "InstanceQuiesceFailed",
    "InstanceQuiesceNotSupported",
    "InstanceRebootFailure",
    "InstanceResumeFailure",
    "InstanceSuspendFailure",
    "InstanceTerminationFailure",
    "InstanceUnacceptable",
    "InterfaceAttachFailedNoNetwork",
    "InterfaceAttachPciClaimFailed",
    "InterfaceAttachResourceAllocationFailed",
    "InterfaceDetachFailed",
    "Invalid",
    "InvalidAPIVersionString",
    "InvalidAggregateAction",
    "InvalidAggregateActionAdd",
    "InvalidAggregateActionDelete",
    "InvalidAggregateActionUpdate",
    "InvalidAggregateActionUpdateMeta",
    "InvalidArchitectureName",
    "InvalidAttribute",
    "InvalidBDM",
    "InvalidBDMBootSequence",
    "InvalidBDMDiskBus",
    "InvalidBDMEphemeralSize",
    "InvalidBDMForLegacy",
    "InvalidBDMFormat",
    "InvalidBDMImage",
    "InvalidBDMLocalsLimit",
    "InvalidBDMSnapshot",
    "InvalidBDMSwapSize",
    "InvalidBDMVolume",
    "InvalidBDMVolumeNotBootable",
    "InvalidCPUAllocationPolicy",
    "InvalidCPUInfo",
    "InvalidCPUThreadAllocationPolicy",
    "InvalidCidr",
    "InvalidConfiguration",
    "InvalidConnectionInfo",
    "InvalidContentType",
    "InvalidDevicePath",
    "InvalidDiskFormat",
    "InvalidDiskInfo",
    "InvalidEmulatorThreadsPolicy",
    "InvalidFixedIpAndMaxCountRequest",
    "InvalidGlobalAPIVersion",
    "InvalidHostname",
    "InvalidHypervisorType",
    "InvalidHypervisorVirtType",
    "InvalidID",
    "InvalidImageConfigDrive",
    "InvalidImageFormat",
    "InvalidImagePropertyName",
    "InvalidImageRef",
    "InvalidInput",
    "InvalidInventory",
    "InvalidIpAddressError",
    "InvalidIpProtocol",
    "InvalidKeypair",
    "InvalidMachineType",
    "InvalidMachineTypeUpdate",
    "InvalidMetadata",
    "InvalidMetadataSize",
    "InvalidMigrationState",
    "InvalidMixedInstanceDedicatedMask",
    "InvalidNUMANodesNumber",
    "InvalidName",
    "InvalidNetworkNUMAAffinity",
    "InvalidPCINUMAAffinity",
    "InvalidParameterValue",
    "InvalidPortRange",
    "InvalidQuotaMethodUsage",
    "InvalidQuotaValue",
    "InvalidRequest",
    "InvalidReservedMemoryPagesOption",
    "InvalidResourceClass",
    "InvalidSortKey",
    "InvalidStrTime",
    "InvalidToken",
    "InvalidUUID",
    "InvalidVIOMMUArchitecture",
    "InvalidVIOMMUMachineType",
    "InvalidVideoMode",
    "InvalidVirtualMachineMode",
    "InvalidVolume",
    "InvalidVolumeAccessMode",
    "InvalidWatchdogAction",
    "InventoryInUse",
    "LibguestfsCannotReadKernel",
    "LockMemoryForbidden",
    "MemoryPageSizeForbidden",
    "MemoryPageSizeInvalid",
    "MemoryPageSizeNotSupported",
    "MemoryPagesUnsupported",
    "MigrationPreCheckError",
    "MismatchVolumeAZException",
    "MultiattachNotSupportedOldMicroversion",
    "MultiattachSwapVolumeNotSupported",
    "MultiattachToShelvedNotSupported",
    "MultiplePortsNotApplicable",
    "NUMATopologyUnsupported",
    "NetworkAmbiguous",
    "NetworkInterfaceTaggedAttachNotSupported",
    "NetworkRequiresSubnet",
    "NetworksWithQoSPolicyNotSupported",
    "NeutronAdminCredentialConfigurationInvalid",
    "NotSupportedWithOption",
    "PciConfigInvalidSpec",
    "PciDeviceInvalidOwner",
    "PciDeviceInvalidStatus",
    "PciDevicePFInvalidStatus",
    "PciDeviceVFInvalidStatus",
    "PciInvalidAlias",
    "PortBindingFailed",
    "PortInUse",
    "PortNotUsable",
    "PortNotUsableDNS",
    "PortRequiresFixedIP",
    "PortUpdateFailed",
    "PreserveEphemeralNotSupported",
    "QemuGuestAgentNotEnabled",
    "RealtimeConfigurationInvalid",
    "RealtimeMaskNotFoundOrInvalid",
    "RequiredMixedInstancePolicy",
    "RequiredMixedOrRealtimeCPUMask",
    "RngDeviceNotExist",
    "SecureBootNotSupported",
    "SecurityGroupCannotBeApplied",
    "SecurityGroupConnectionStateConflict",
    "SecurityGroupExists",
    "SerialPortNumberLimitExceeded",
    "ServiceNotUnique",
    "ServiceTooOld",
    "ServiceUnavailable",
    "SetAdminPasswdNotSupported",
    "StaleVolumeMount",
    "StatelessFirmwareRequired",
    "TokenInUse",
    "TooManyDiskDevices",
    "TooOldComputeService",
    "TriggerCrashDumpNotSupported",
    "UEFINotSupported",
    "UnableToAutoAllocateNetwork",
    "UnableToMigrateToSelf",
    "UnshelveHostNotInAZ",
    "UnshelveInstanceInvalidState",
    "UnsupportedHardware",
    "UnsupportedHostCPUControlPolicy",
    "UnsupportedImageModel",
    "UnsupportedMachineType",
    "UnsupportedPolicyException",
    "UnsupportedRPCVersion",
    "UnsupportedRescueBus",
    "UnsupportedRescueDevice",
    "UnsupportedRescueImage",
    "UnsupportedVirtType",
    "VTPMOldCompute",
    "ValidationError",
    "VersionNotFoundForAPIMethod",
    "VifDetailsMissingMacvtapParameters",
    "VifDetailsMissingVhostuserSockPath",
    "VolumeAttachFailed",
    "VolumeBDMIsMultiAttach",
    "VolumeDetachFailed",
    "VolumeEncryptionNotSupported",
    "VolumeExtendFailed",
    "VolumeTaggedAttachNotSupported",
    "VolumeTaggedAttachToShelvedNotSupported",
    "VolumesNotRemoved",
];

/// A failed move task: nova's exception.
pub(super) struct Failure {
    /// The class (`<Class>_Remote` when it came over RPC, as oslo names it).
    pub(super) class: String,
    /// `str(exc)`.
    pub(super) message: String,
    /// `exc.kwargs` in nova's order, `code` last.
    pub(super) kwargs: Vec<(String, Value)>,
    /// The server goes to ERROR (an unexpected failure of a live migration).
    pub(super) error_state: bool,
}

/// nova's `msg_fmt` prefix of the exceptions raised with `reason=`.
fn prefix(class: &str) -> &'static str {
    match class {
        "NoValidHost" => "No valid host was found. ",
        "MigrationPreCheckError" => "Migration pre-check error: ",
        "MigrationError" => "Migration error: ",
        "MigrationSchedulerRPCError" => "Migration select destinations error: ",
        _ => "",
    }
}

impl Failure {
    /// An exception raised here with `reason=` (its message is nova's
    /// `msg_fmt` around the reason; code 500).
    pub(super) fn new(class: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        let reason = message
            .strip_prefix(prefix(class))
            .unwrap_or(&message)
            .to_owned();
        Self::with_kwargs(class, message, &[("reason", json!(reason))], 500)
    }

    /// An exception raised here with these keywords and nova's `code`.
    pub(super) fn with_kwargs(
        class: &str,
        message: impl Into<String>,
        kwargs: &[(&str, Value)],
        code: i64,
    ) -> Self {
        let mut kw: Vec<(String, Value)> = kwargs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        kw.push(("code".into(), json!(code)));
        Failure {
            class: class.to_owned(),
            message: message.into(),
            kwargs: kw,
            error_state: false,
        }
    }

    /// An exception received over RPC (oslo names nova's `<Class>_Remote`).
    pub(super) fn remote(e: &RemoteError) -> Self {
        let class = if e.module == "nova.exception" {
            format!("{}_Remote", e.class)
        } else {
            e.class.clone()
        };
        let mut kwargs: Vec<(String, Value)> = e
            .kwargs
            .iter()
            .filter(|(k, _)| *k != "code")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        kwargs.push((
            "code".into(),
            e.kwargs.get("code").cloned().unwrap_or(json!(500)),
        ));
        Failure {
            class,
            message: e.message.clone(),
            kwargs,
            error_state: false,
        }
    }

    /// The nova class without oslo's `_Remote`.
    fn base_class(&self) -> &str {
        self.class.strip_suffix("_Remote").unwrap_or(&self.class)
    }

    /// A destination's refusal (nova's `Invalid` or `MigrationPreCheckError`).
    pub(super) fn is_refusal(&self) -> bool {
        REFUSALS.binary_search(&self.base_class()).is_ok()
    }

    /// As a live migration's failure: an exception nova's `_live_migrate`
    /// does not expect puts the server in ERROR.
    pub(super) fn in_live_migration(mut self) -> Self {
        self.error_state = !LIVE_EXPECTED.contains(&self.base_class());
        self
    }

    /// The fault's code (`exc.kwargs['code']`).
    pub(super) fn code(&self) -> i64 {
        self.kwargs
            .iter()
            .find(|(k, _)| k == "code")
            .and_then(|(_, v)| v.as_i64())
            .unwrap_or(500)
    }

    /// `repr(exc)` as the legacy notification carries it.
    pub(super) fn repr(&self) -> String {
        nova_exception_repr(&self.class, &self.message, &self.kwargs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_sorted_for_the_search() {
        assert!(REFUSALS.windows(2).all(|w| w[0] < w[1]));
        assert!(Failure::new("MigrationPreCheckError", "x").is_refusal());
        assert!(Failure::with_kwargs("InvalidCPUInfo", "x", &[], 400).is_refusal());
        assert!(!Failure::with_kwargs("InstanceNotFound", "x", &[], 404).is_refusal());
    }

    #[test]
    fn unexpected_live_failures_put_the_server_in_error() {
        assert!(
            !Failure::new("NoValidHost", "No valid host was found. ")
                .in_live_migration()
                .error_state
        );
        let gone = RemoteError::new(
            "InstanceNotFound",
            "nova.exception",
            "Instance u could not be found.",
        )
        .with_kwarg("instance_id", "u")
        .with_kwarg("code", 404);
        let f = Failure::remote(&gone).in_live_migration();
        assert!(f.error_state);
        assert_eq!(f.code(), 404);
        assert_eq!(
            f.repr(),
            "{'kwargs': {'instance_id': 'u', 'code': 404}, 'message': 'Instance u could not be found.', 'class': 'InstanceNotFound_Remote'}"
        );
        let f = Failure::new("NoValidHost", "No valid host was found. none left");
        assert_eq!(f.kwargs[0], ("reason".into(), json!("none left")));
    }
}
