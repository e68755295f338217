#!/usr/bin/env python3
# upstream's src/manage.py: the image's ENV makes the settings production_settings.
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pretix.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
