"""Pre-image backups of a district before a load, and what a restore needs to check and plan (DESIGN.md section 5, point 5)."""

from cert_loader.backup.layout import BackupError, BackupPaths, backups_dir
from cert_loader.backup.record import BackupCheck, BackupManifest, check_backup, read_backup_manifest
from cert_loader.backup.writer import BackupRun, BackupSummary

__all__ = [
    "BackupCheck", "BackupError", "BackupManifest", "BackupPaths", "BackupRun", "BackupSummary",
    "backups_dir", "check_backup", "read_backup_manifest",
]
