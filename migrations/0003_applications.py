from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_identity')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Application',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=32)),
                ('applicant', fields.ForeignKeyField('models.Account', source_field='applicant_id', db_constraint=True, to_field='id', related_name='applications', on_delete=OnDelete.RESTRICT)),
                ('item', fields.ForeignKeyField('models.ServiceItem', source_field='item_id', db_constraint=True, to_field='id', related_name='applications', on_delete=OnDelete.RESTRICT)),
                ('department', fields.ForeignKeyField('models.Department', source_field='department_id', db_constraint=True, to_field='id', related_name='applications', on_delete=OnDelete.RESTRICT)),
                ('point', fields.ForeignKeyField('models.ServicePoint', source_field='point_id', null=True, db_constraint=True, to_field='id', related_name='applications', on_delete=OnDelete.RESTRICT)),
                ('channel', fields.CharField(max_length=16)),
                ('status', fields.CharField(default='submitted', db_index=True, max_length=16)),
                ('version', fields.IntField(default=1)),
                ('form', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('delivery_mode', fields.CharField(max_length=16)),
                ('delivery_address_enc', fields.TextField(null=True, unique=False)),
                ('returned_count', fields.SmallIntField(default=0)),
                ('accepted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('accepted_by', fields.ForeignKeyField('models.Account', source_field='accepted_by_id', null=True, db_constraint=True, to_field='id', related_name='accepted_applications', on_delete=OnDelete.SET_NULL)),
                ('due_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('suspended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('paused_workdays', fields.IntField(default=0)),
                ('deadline_status', fields.CharField(default='normal', db_index=True, max_length=16)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('decision', fields.CharField(null=True, max_length=16)),
                ('decided_on_time', fields.BooleanField(null=True)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'application', 'app': 'models', 'indexes': [Index(fields=['point_id', 'status', 'due_at']), Index(fields=['department_id', 'status', 'due_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApplicationEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('application', fields.ForeignKeyField('models.Application', source_field='application_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('action', fields.CharField(max_length=32)),
                ('from_status', fields.CharField(null=True, max_length=16)),
                ('to_status', fields.CharField(max_length=16)),
                ('actor', fields.ForeignKeyField('models.Account', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name='application_events', on_delete=OnDelete.SET_NULL)),
                ('actor_role', fields.CharField(max_length=16)),
                ('channel', fields.CharField(default='', max_length=16)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('note', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
            ],
            options={'table': 'application_event', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One step of a case: its timeline and its audit trail.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApplicationMaterial',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('application', fields.ForeignKeyField('models.Application', source_field='application_id', db_constraint=True, to_field='id', related_name='materials', on_delete=OnDelete.CASCADE)),
                ('material_code', fields.CharField(max_length=32)),
                ('sha256', fields.CharField(max_length=64)),
                ('size', fields.IntField()),
                ('content_type', fields.CharField(max_length=64)),
                ('uploaded_by', fields.ForeignKeyField('models.Account', source_field='uploaded_by_id', null=True, db_constraint=True, to_field='id', related_name='uploads', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'application_material', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Complaint',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='complaints', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=16)),
                ('content', fields.TextField(unique=False)),
                ('application', fields.ForeignKeyField('models.Application', source_field='application_id', null=True, db_constraint=True, to_field='id', related_name='complaints', on_delete=OnDelete.SET_NULL)),
                ('point', fields.ForeignKeyField('models.ServicePoint', source_field='point_id', null=True, db_constraint=True, to_field='id', related_name='complaints', on_delete=OnDelete.SET_NULL)),
                ('department', fields.ForeignKeyField('models.Department', source_field='department_id', null=True, db_constraint=True, to_field='id', related_name='complaints', on_delete=OnDelete.SET_NULL)),
                ('status', fields.CharField(default='open', max_length=16)),
                ('due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('reply', fields.TextField(null=True, unique=False)),
                ('replied_by', fields.ForeignKeyField('models.Account', source_field='replied_by_id', null=True, db_constraint=True, to_field='id', related_name='complaint_replies', on_delete=OnDelete.SET_NULL)),
                ('replied_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'complaint', 'app': 'models', 'pk_attr': 'id', 'table_description': '咨询投诉建议: a resident asks, complains or suggests, and staff answer within a deadline.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Evaluation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('application', fields.OneToOneField('models.Application', source_field='application_id', db_constraint=True, to_field='id', related_name='evaluation', on_delete=OnDelete.CASCADE)),
                ('level', fields.SmallIntField()),
                ('comment', fields.TextField(default='', unique=False)),
                ('channel', fields.CharField(max_length=16)),
                ('point', fields.ForeignKeyField('models.ServicePoint', source_field='point_id', null=True, db_constraint=True, to_field='id', related_name='evaluations', on_delete=OnDelete.RESTRICT)),
                ('staff', fields.ForeignKeyField('models.Account', source_field='staff_id', null=True, db_constraint=True, to_field='id', related_name='evaluations', on_delete=OnDelete.SET_NULL)),
                ('item', fields.ForeignKeyField('models.ServiceItem', source_field='item_id', db_constraint=True, to_field='id', related_name='evaluations', on_delete=OnDelete.RESTRICT)),
                ('department', fields.ForeignKeyField('models.Department', source_field='department_id', db_constraint=True, to_field='id', related_name='evaluations', on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'evaluation', 'app': 'models', 'pk_attr': 'id', 'table_description': '好差评: one per application, on the national 5-level scale.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=32)),
                ('title', fields.CharField(max_length=128)),
                ('body', fields.TextField(unique=False)),
                ('application', fields.ForeignKeyField('models.Application', source_field='application_id', null=True, db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notification', 'app': 'models', 'indexes': [Index(fields=['account_id', 'id'])], 'pk_attr': 'id', 'table_description': 'An inbox entry, written in the same transaction as the change it tells of.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NumberSequence',
            fields=[
                ('day', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=8)),
                ('last_value', fields.IntField(default=0)),
            ],
            options={'table': 'number_sequence', 'app': 'models', 'pk_attr': 'day', 'table_description': 'Last application number handed out per day (XY + YYYYMMDD + 6 digits).'},
            bases=['Model'],
        ),
    ]
