# The image's settings module (upstream's deployment/docker/production_settings.py).
from pretix.settings import *  # noqa

LOGGING["handlers"]["mail_admins"]["include_html"] = True
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"  # noqa
