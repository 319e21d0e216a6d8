"""Close a user's sockets everywhere when they are deactivated or change password."""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from realtime.emit import user_disconnect_sync

log = logging.getLogger(__name__)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def user_remember_credentials(sender, instance, **kwargs) -> None:
    """Keep what the row held before the save, to compare after it."""
    if instance.pk is None:
        instance._rt_before = None
        return
    instance._rt_before = (
        sender.objects.filter(pk=instance.pk)
        .values_list("is_active", "password")
        .first()
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def user_disconnect_if_revoked(sender, instance, created, **kwargs) -> None:
    """After commit, disconnect every session of a user who lost access."""
    before = getattr(instance, "_rt_before", None)
    if created or before is None:
        return
    was_active, old_password = before
    if (was_active and not instance.is_active) or old_password != instance.password:
        reason = "user deactivated" if not instance.is_active else "password changed"
        user_id = instance.pk

        def disconnect() -> None:
            try:
                user_disconnect_sync(user_id=user_id, reason=reason)
            except Exception:
                log.exception("could not disconnect user %s", user_id)

        transaction.on_commit(disconnect)
