# Issue 12: e-licences (our reference per holder, every verification, the API keys of verifying systems), the
# e-licence a case holds for a material, and which e-licence type may stand in for a catalogue material.
from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_wechat')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('prefix', fields.CharField(max_length=16)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('scopes', fields.CharField(max_length=256)),
                ('rate_limit', fields.IntField()),
                ('created_by', fields.ForeignKeyField('models.Account', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_key', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An API key of another city system (hashed), with its scopes and rate limit'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Licence',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='licences', on_delete=OnDelete.CASCADE)),
                ('library_id', fields.CharField(max_length=64)),
                ('type', fields.CharField(max_length=32)),
                ('valid_until', fields.DateField(null=True)),
                ('expiry_told', fields.DateField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'licence', 'app': 'models', 'unique_together': (('account', 'library_id'),), 'pk_attr': 'id', 'table_description': "A holder's e-licence: our id for the library's record, and its validity"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApplicationLicence',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('application', fields.ForeignKeyField('models.Application', source_field='application_id', db_constraint=True, to_field='id', related_name='licence_materials', on_delete=OnDelete.CASCADE)),
                ('material_code', fields.CharField(max_length=32)),
                ('licence', fields.ForeignKeyField('models.Licence', source_field='licence_id', db_constraint=True, to_field='id', related_name='applications', on_delete=OnDelete.RESTRICT)),
                ('licence_type', fields.CharField(max_length=32)),
                ('verified_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'application_licence', 'app': 'models', 'unique_together': (('application', 'material_code'),), 'pk_attr': 'id', 'table_description': 'An e-licence attached for a material instead of a file (免提交): a reference, checked when attached.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LicenceVerification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('licence', fields.ForeignKeyField('models.Licence', source_field='licence_id', null=True, db_constraint=True, to_field='id', related_name='verifications', on_delete=OnDelete.CASCADE)),
                ('verifier_account', fields.ForeignKeyField('models.Account', source_field='verifier_account_id', null=True, db_constraint=True, to_field='id', related_name='licence_checks', on_delete=OnDelete.SET_NULL)),
                ('verifier_key', fields.ForeignKeyField('models.ApiKey', source_field='verifier_key_id', null=True, db_constraint=True, to_field='id', related_name='verifications', on_delete=OnDelete.SET_NULL)),
                ('verifier_role', fields.CharField(max_length=16)),
                ('valid', fields.BooleanField()),
                ('reason', fields.CharField(null=True, max_length=24)),
                ('fields_mask', fields.IntField(default=0)),
                ('ip', fields.CharField(default='', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'licence_verification', 'app': 'models', 'indexes': [Index(fields=['licence_id', 'id'])], 'pk_attr': 'id', 'table_description': 'Every verification of a licence presentation: who, when, which licence, what result'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ItemMaterial',
            name='licence_type',
            field=fields.CharField(null=True, max_length=32),
        ),
    ]
