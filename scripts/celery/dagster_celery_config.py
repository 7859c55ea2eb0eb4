"""Celery settings of a cert_loader worker, beyond what its command line says (scripts/celery-worker.sh).

dagster-celery's own hook: ``dagster_celery.app`` (``make_app``) imports a module named ``dagster_celery_config``
when one is importable and updates the app's settings from it (``dagster-celery worker start -y`` writes such a
module the same way). scripts/celery-worker.sh puts this directory first on PYTHONPATH. What the settings are
and why: cert_loader/defs/executor.py, ``worker_settings``.
"""

from cert_loader.defs.executor import worker_settings as _worker_settings

globals().update(_worker_settings())
