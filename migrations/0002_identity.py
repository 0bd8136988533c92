from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('phone_index', fields.CharField(null=True, unique=True, max_length=64)),
                ('phone_enc', fields.TextField(null=True, unique=False)),
                ('password_hash', fields.CharField(null=True, max_length=255)),
                ('roles', fields.CharField(default='resident', max_length=64)),
                ('department', fields.ForeignKeyField('models.Department', source_field='department_id', null=True, db_constraint=True, to_field='id', related_name='staff', on_delete=OnDelete.RESTRICT)),
                ('real_name_level', fields.SmallIntField(default=1)),
                ('status', fields.CharField(default='active', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'account', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AccountPoint',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='points', on_delete=OnDelete.CASCADE)),
                ('point', fields.ForeignKeyField('models.ServicePoint', source_field='point_id', db_constraint=True, to_field='id', related_name='grid_workers', on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'account_point', 'app': 'models', 'unique_together': (('account', 'point'),), 'pk_attr': 'id', 'table_description': 'The service points a grid worker serves.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('actor', fields.ForeignKeyField('models.Account', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name='audit_actions', on_delete=OnDelete.SET_NULL)),
                ('actor_role', fields.CharField(default='', max_length=16)),
                ('action', fields.CharField(max_length=64)),
                ('subject', fields.ForeignKeyField('models.Account', source_field='subject_id', null=True, db_constraint=True, to_field='id', related_name='audit_subject', on_delete=OnDelete.SET_NULL)),
                ('request_id', fields.CharField(default='', max_length=64)),
                ('ip', fields.CharField(default='', max_length=64)),
                ('detail', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
            ],
            options={'table': 'audit_log', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Who did what to whose personal data, and when. Holds ids and masked values only.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChannelBinding',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='bindings', on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharField(max_length=16)),
                ('external_id', fields.CharField(max_length=128)),
                ('unionid', fields.CharField(null=True, max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'channel_binding', 'app': 'models', 'unique_together': (('channel', 'external_id'), ('account', 'channel')), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RealNameRecord',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.OneToOneField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='real_name', on_delete=OnDelete.CASCADE)),
                ('name_enc', fields.TextField(unique=False)),
                ('id_number_enc', fields.TextField(unique=False)),
                ('id_number_index', fields.CharField(unique=True, max_length=64)),
                ('level', fields.SmallIntField()),
                ('verified_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('in_person_by', fields.ForeignKeyField('models.Account', source_field='in_person_by_id', null=True, db_constraint=True, to_field='id', related_name='in_person_checks', on_delete=OnDelete.SET_NULL)),
                ('in_person_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'real_name_record', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('family', fields.CharField(db_index=True, max_length=32)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='refresh_tokens', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('channel', fields.CharField(max_length=16)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refresh_token', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One refresh token of a session family, stored as its SHA-256 only. Used once, then replaced.'},
            bases=['Model'],
        ),
    ]
