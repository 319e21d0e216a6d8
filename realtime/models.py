from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """An account; `name` is what other users see, `role` mirrors Open WebUI's roles."""

    class Role(models.TextChoices):
        ADMIN = "admin"
        USER = "user"
        PENDING = "pending"

    name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    last_active_at = models.DateTimeField(null=True, blank=True)

    @property
    def display_name(self) -> str:
        """The name shown to other users."""
        return self.name or self.get_username()


class LiveSession(models.Model):
    """No table: the admin's entry for live sessions, which live in shared state."""

    class Meta:
        managed = False
        verbose_name = "live session"


class ModelInUse(models.Model):
    """No table: the admin's entry for models in use (usage marks in shared state)."""

    class Meta:
        managed = False
        verbose_name = "model in use"
        verbose_name_plural = "models in use"
