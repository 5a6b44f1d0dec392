""" Contains all the data models used in inputs/outputs """

from .accel_choice import AccelChoice
from .added_nic import AddedNic
from .api_error import ApiError
from .api_token import ApiToken
from .audit_head import AuditHead
from .audit_outcome import AuditOutcome
from .audit_page import AuditPage
from .audit_record import AuditRecord
from .b_tree_map import BTreeMap
from .backup import Backup
from .backup_create_request import BackupCreateRequest
from .backup_repo import BackupRepo
from .backup_repo_add_request import BackupRepoAddRequest
from .backup_repos_gc_response_200 import BackupReposGcResponse200
from .backup_repos_prune_response_200 import BackupReposPruneResponse200
from .backup_repos_sync_response_200 import BackupReposSyncResponse200
from .backup_repos_verify_response_200 import BackupReposVerifyResponse200
from .backup_restore_request import BackupRestoreRequest
from .backup_schedule import BackupSchedule
from .backups_delete_response_200 import BackupsDeleteResponse200
from .backups_show_response_200 import BackupsShowResponse200
from .build_tiny_request import BuildTinyRequest
from .clone_request import CloneRequest
from .clone_source import CloneSource
from .cluster_status import ClusterStatus
from .cluster_status_controllers import ClusterStatusControllers
from .console_log import ConsoleLog
from .data_disk import DataDisk
from .desired_vm import DesiredVm
from .desired_vms import DesiredVms
from .direction import Direction
from .disk_add_request import DiskAddRequest
from .disk_format import DiskFormat
from .disk_resize_request import DiskResizeRequest
from .error_code import ErrorCode
from .evacuate_request import EvacuateRequest
from .evacuation_plan import EvacuationPlan
from .evacuation_step import EvacuationStep
from .event import Event
from .event_data import EventData
from .event_kind import EventKind
from .exec_request import ExecRequest
from .exec_result import ExecResult
from .firmware import Firmware
from .guest_interface import GuestInterface
from .ha_policy import HaPolicy
from .health import Health
from .heartbeat_request import HeartbeatRequest
from .image_file import ImageFile
from .image_kind_type_0 import ImageKindType0
from .image_kind_type_0_kind import ImageKindType0Kind
from .image_kind_type_1 import ImageKindType1
from .image_kind_type_1_kind import ImageKindType1Kind
from .image_kind_type_2 import ImageKindType2
from .image_kind_type_2_kind import ImageKindType2Kind
from .image_local_import_request import ImageLocalImportRequest
from .image_type_0 import ImageType0
from .image_type_0_kind import ImageType0Kind
from .image_type_1 import ImageType1
from .image_type_1_kind import ImageType1Kind
from .image_type_2 import ImageType2
from .image_type_2_kind import ImageType2Kind
from .image_url_import_request import ImageUrlImportRequest
from .join_token_create_request import JoinTokenCreateRequest
from .join_token_created import JoinTokenCreated
from .join_token_info import JoinTokenInfo
from .local_files import LocalFiles
from .login_request import LoginRequest
from .member import Member
from .migrate_request import MigrateRequest
from .migration import Migration
from .migration_mode import MigrationMode
from .migration_outcome import MigrationOutcome
from .migration_progress import MigrationProgress
from .migration_ref import MigrationRef
from .migration_report import MigrationReport
from .migration_state import MigrationState
from .network_create_request import NetworkCreateRequest
from .network_type_0 import NetworkType0
from .network_type_0_mode import NetworkType0Mode
from .network_type_1 import NetworkType1
from .network_type_1_mode import NetworkType1Mode
from .network_type_2 import NetworkType2
from .network_type_2_mode import NetworkType2Mode
from .nic import Nic
from .nic_add_request import NicAddRequest
from .nic_counters import NicCounters
from .nic_link_type_0 import NicLinkType0
from .nic_link_type_0_kind import NicLinkType0Kind
from .nic_link_type_1 import NicLinkType1
from .nic_link_type_1_kind import NicLinkType1Kind
from .nic_link_type_2 import NicLinkType2
from .nic_link_type_2_kind import NicLinkType2Kind
from .nic_request import NicRequest
from .node import Node
from .node_lease import NodeLease
from .node_overlay import NodeOverlay
from .node_overlay_network import NodeOverlayNetwork
from .node_sample import NodeSample
from .node_security_group import NodeSecurityGroup
from .node_state import NodeState
from .node_usage import NodeUsage
from .openapi_json_show_response_200 import OpenapiJsonShowResponse200
from .operation import Operation
from .operation_ref import OperationRef
from .operation_state import OperationState
from .operation_update import OperationUpdate
from .output_encoding import OutputEncoding
from .ova_import import OvaImport
from .ova_local_import_request import OvaLocalImportRequest
from .ova_nic import OvaNic
from .overlay_endpoint import OverlayEndpoint
from .overlay_network import OverlayNetwork
from .overlay_peer import OverlayPeer
from .port_forward import PortForward
from .power_state import PowerState
from .project import Project
from .project_create_request import ProjectCreateRequest
from .project_limits import ProjectLimits
from .project_set_request import ProjectSetRequest
from .project_usage import ProjectUsage
from .project_usage_report import ProjectUsageReport
from .protocol import Protocol
from .prune_request import PruneRequest
from .register_request import RegisterRequest
from .register_response import RegisterResponse
from .repo_location_type_0 import RepoLocationType0
from .repo_location_type_0_kind import RepoLocationType0Kind
from .repo_location_type_1 import RepoLocationType1
from .repo_location_type_1_kind import RepoLocationType1Kind
from .repo_sync_request import RepoSyncRequest
from .resources import Resources
from .restore_source import RestoreSource
from .retention import Retention
from .role import Role
from .role_binding import RoleBinding
from .security_group import SecurityGroup
from .security_group_create_request import SecurityGroupCreateRequest
from .security_rule import SecurityRule
from .security_rule_added import SecurityRuleAdded
from .security_rule_request import SecurityRuleRequest
from .snapshot_create_request import SnapshotCreateRequest
from .stop_request import StopRequest
from .storage_kind import StorageKind
from .storage_pool import StoragePool
from .store_health import StoreHealth
from .template_request import TemplateRequest
from .token_create_request import TokenCreateRequest
from .token_created import TokenCreated
from .tunnel_endpoint import TunnelEndpoint
from .user import User
from .user_create_request import UserCreateRequest
from .vm import Vm
from .vm_action import VmAction
from .vm_create_request import VmCreateRequest
from .vm_metrics import VmMetrics
from .vm_rates import VmRates
from .vm_sample import VmSample
from .vm_security_groups_request import VmSecurityGroupsRequest
from .vm_set_request import VmSetRequest
from .vm_set_response import VmSetResponse
from .vm_snapshot import VmSnapshot
from .vm_state import VmState
from .vm_status_report import VmStatusReport
from .vm_usage import VmUsage
from .vm_usage_point import VmUsagePoint
from .who_am_i import WhoAmI
from .who_am_i_projects import WhoAmIProjects

__all__ = (
    "AccelChoice",
    "AddedNic",
    "ApiError",
    "ApiToken",
    "AuditHead",
    "AuditOutcome",
    "AuditPage",
    "AuditRecord",
    "Backup",
    "BackupCreateRequest",
    "BackupRepo",
    "BackupRepoAddRequest",
    "BackupReposGcResponse200",
    "BackupReposPruneResponse200",
    "BackupReposSyncResponse200",
    "BackupReposVerifyResponse200",
    "BackupRestoreRequest",
    "BackupSchedule",
    "BackupsDeleteResponse200",
    "BackupsShowResponse200",
    "BTreeMap",
    "BuildTinyRequest",
    "CloneRequest",
    "CloneSource",
    "ClusterStatus",
    "ClusterStatusControllers",
    "ConsoleLog",
    "DataDisk",
    "DesiredVm",
    "DesiredVms",
    "Direction",
    "DiskAddRequest",
    "DiskFormat",
    "DiskResizeRequest",
    "ErrorCode",
    "EvacuateRequest",
    "EvacuationPlan",
    "EvacuationStep",
    "Event",
    "EventData",
    "EventKind",
    "ExecRequest",
    "ExecResult",
    "Firmware",
    "GuestInterface",
    "HaPolicy",
    "Health",
    "HeartbeatRequest",
    "ImageFile",
    "ImageKindType0",
    "ImageKindType0Kind",
    "ImageKindType1",
    "ImageKindType1Kind",
    "ImageKindType2",
    "ImageKindType2Kind",
    "ImageLocalImportRequest",
    "ImageType0",
    "ImageType0Kind",
    "ImageType1",
    "ImageType1Kind",
    "ImageType2",
    "ImageType2Kind",
    "ImageUrlImportRequest",
    "JoinTokenCreated",
    "JoinTokenCreateRequest",
    "JoinTokenInfo",
    "LocalFiles",
    "LoginRequest",
    "Member",
    "MigrateRequest",
    "Migration",
    "MigrationMode",
    "MigrationOutcome",
    "MigrationProgress",
    "MigrationRef",
    "MigrationReport",
    "MigrationState",
    "NetworkCreateRequest",
    "NetworkType0",
    "NetworkType0Mode",
    "NetworkType1",
    "NetworkType1Mode",
    "NetworkType2",
    "NetworkType2Mode",
    "Nic",
    "NicAddRequest",
    "NicCounters",
    "NicLinkType0",
    "NicLinkType0Kind",
    "NicLinkType1",
    "NicLinkType1Kind",
    "NicLinkType2",
    "NicLinkType2Kind",
    "NicRequest",
    "Node",
    "NodeLease",
    "NodeOverlay",
    "NodeOverlayNetwork",
    "NodeSample",
    "NodeSecurityGroup",
    "NodeState",
    "NodeUsage",
    "OpenapiJsonShowResponse200",
    "Operation",
    "OperationRef",
    "OperationState",
    "OperationUpdate",
    "OutputEncoding",
    "OvaImport",
    "OvaLocalImportRequest",
    "OvaNic",
    "OverlayEndpoint",
    "OverlayNetwork",
    "OverlayPeer",
    "PortForward",
    "PowerState",
    "Project",
    "ProjectCreateRequest",
    "ProjectLimits",
    "ProjectSetRequest",
    "ProjectUsage",
    "ProjectUsageReport",
    "Protocol",
    "PruneRequest",
    "RegisterRequest",
    "RegisterResponse",
    "RepoLocationType0",
    "RepoLocationType0Kind",
    "RepoLocationType1",
    "RepoLocationType1Kind",
    "RepoSyncRequest",
    "Resources",
    "RestoreSource",
    "Retention",
    "Role",
    "RoleBinding",
    "SecurityGroup",
    "SecurityGroupCreateRequest",
    "SecurityRule",
    "SecurityRuleAdded",
    "SecurityRuleRequest",
    "SnapshotCreateRequest",
    "StopRequest",
    "StorageKind",
    "StoragePool",
    "StoreHealth",
    "TemplateRequest",
    "TokenCreated",
    "TokenCreateRequest",
    "TunnelEndpoint",
    "User",
    "UserCreateRequest",
    "Vm",
    "VmAction",
    "VmCreateRequest",
    "VmMetrics",
    "VmRates",
    "VmSample",
    "VmSecurityGroupsRequest",
    "VmSetRequest",
    "VmSetResponse",
    "VmSnapshot",
    "VmState",
    "VmStatusReport",
    "VmUsage",
    "VmUsagePoint",
    "WhoAmI",
    "WhoAmIProjects",
)
