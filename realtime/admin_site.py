"""The admin site: users listed under "Authentication and authorization", where
Django's own user model would be, although ours lives in the realtime app."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

# The realtime app's model that the admin lists with Django's auth models.
USER_MODEL = "User"


class RealtimeAdminSite(admin.AdminSite):
    """Django's admin site with the user model moved to the auth section."""

    def get_app_list(self, request, app_label=None):
        """Every app's models as Django lists them, but users under auth."""
        apps = {app["app_label"]: app for app in super().get_app_list(request)}
        realtime, auth = apps.get("realtime"), apps.get("auth")
        if realtime is not None and auth is not None:
            users = [m for m in realtime["models"] if m["object_name"] == USER_MODEL]
            realtime["models"] = [m for m in realtime["models"] if m not in users]
            auth["models"] = sorted(auth["models"] + users, key=lambda m: m["name"])
            if not realtime["models"]:
                del apps["realtime"]
        if app_label is not None:
            return [apps[app_label]] if app_label in apps else []
        return list(apps.values())


class RealtimeAdminConfig(AdminConfig):
    """django.contrib.admin with RealtimeAdminSite as admin.site."""

    default_site = "realtime.admin_site.RealtimeAdminSite"
