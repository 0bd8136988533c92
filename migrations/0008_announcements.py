# Issue 10: announcements (fanned out by the workers), the copies of one in the inbox, the outbox row of
# a case that arrived or a complaint routed (its subject), receipts kept as they arrive, and the indexes to
# find a delivery by its provider message id and by status and time.
from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_deliveries')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Announcement',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('title', fields.CharField(max_length=64)),
                ('body', fields.TextField(unique=False)),
                ('audience', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('channels', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('send_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharField(max_length=16)),
                ('created_by', fields.ForeignKeyField('models.Account', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='announcements', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cursor', fields.IntField(default=0)),
                ('recipients', fields.IntField(default=0)),
                ('claimed_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'announcement', 'app': 'models', 'indexes': [Index(fields=['status', 'send_at'])], 'pk_attr': 'id', 'table_description': '政务信息、公告: published by staff to an audience, fanned out by the workers in batches into one inbox'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Receipt',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('channel', fields.CharField(max_length=16)),
                ('provider_ref', fields.CharField(max_length=128)),
                ('status', fields.CharField(max_length=24)),
                ('detail', fields.CharField(null=True, max_length=200)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('applied_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'delivery_receipt', 'app': 'models', 'indexes': [Index(fields=['applied_at', 'id']), Index(fields=['provider_ref'])], 'pk_attr': 'id', 'table_description': "A provider's word on a message it took (delivered, or failed after all), kept as it arrived: applied to"},
            bases=['Model'],
        ),
        ops.AddIndex(
            model_name='Delivery',
            index=Index(fields=['provider_ref']),
        ),
        ops.AddIndex(
            model_name='Delivery',
            index=Index(fields=['status', 'updated_at']),
        ),
        ops.AddField(
            model_name='Notification',
            name='announcement',
            field=fields.ForeignKeyField('models.Announcement', source_field='announcement_id', null=True, db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE),
        ),
        ops.AddIndex(
            model_name='Notification',
            index=Index(fields=['announcement_id', 'id']),
        ),
        ops.AddField(
            model_name='Outbox',
            name='subject_id',
            field=fields.BigIntField(null=True),
        ),
    ]
