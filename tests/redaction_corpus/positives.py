"""Positive kinds: one statement generator per kind of credential or personal datum.

A generator returns (statement, secrets, syntax): the text as a coding agent would see it, the exact
substrings that must disappear, and the syntax the value is written in (env, yaml, cli, prose...).
"""

import json
import zlib
from collections.abc import Callable

from tests.redaction_corpus.values import ALNUM, B64, B64URL, HEX, LOWER_ALNUM, UPPER_ALNUM, Values

Statement = tuple[str, list[str], str]
Kind = Callable[[Values], Statement]


def place(v: Values, token: str, env: str, host: str = "api.example.com", *, named: bool = False) -> Statement:
    """A vendor token in one of the syntaxes agents meet it in; the name only sometimes says `secret`.
    `named`: the token has no format of its own, so only syntaxes that name it or its role are drawn."""
    key = env.lower()
    options = (
        ("env", f"{env}={token}"),
        ("export", f'export {env}="{token}"'),
        ("yaml", f"{key}: {token}"),
        ("json", json.dumps({key: token, "timeout": 30})),
        ("toml", f'[auth]\n{key} = "{token}"'),
        ("code", f'client = Client("{token}", timeout=30)'),
        ("header", f"curl -sS -H 'Authorization: Bearer {token}' https://{host}/v1/status"),
        ("cli", f"./deploy.sh --token {token} --env staging"),
        ("prose", f"ok here is the new one {token} it expires in 90 days"),
        ("bare", token),
    )
    syntax, text = v.pick(options[:5] + options[6:8] if named else options)
    return text, [token], syntax


# -- cloud and forge tokens ---------------------------------------------------------------------


def aws_access_key(v: Values) -> Statement:
    key_id, secret = v.aws_key_id(v.pick(("AKIA", "ASIA", "AKIA"))), v.aws_secret()
    syntax, text = v.pick(
        (
            ("ini", f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\nregion = eu-west-1"),
            ("env", f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}"),
            ("code", f's3 = boto3.client("s3", aws_access_key_id="{key_id}", aws_secret_access_key="{secret}")'),
            (
                "cli",
                f"aws configure set aws_access_key_id {key_id} && aws configure set aws_secret_access_key {secret}",
            ),
        )
    )
    return text, [key_id, secret], syntax


def aws_sts_json(v: Values) -> Statement:
    key_id, secret, session = v.aws_key_id("ASIA"), v.aws_secret(), v.aws_session_token()
    creds = {
        "Credentials": {
            "AccessKeyId": key_id,
            "SecretAccessKey": secret,
            "SessionToken": session,
            "Expiration": "2026-11-02T11:14:03+00:00",
        },
        "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/ci/session"},
    }
    return json.dumps(creds, indent=v.pick((None, 2, 4))), [key_id, secret, session], "json"


def github_classic(v: Values) -> Statement:
    return place(v, v.crc_token(v.pick(("ghp_", "gho_", "ghu_", "ghr_"))), "GITHUB_TOKEN", "api.github.com")


def github_fine_grained(v: Values) -> Statement:
    token = f"github_pat_11{v.chars(UPPER_ALNUM, 20)}_{v.chars(ALNUM, 59)}"
    return place(v, token, "GH_TOKEN", "api.github.com")


def github_installation_long(v: Values) -> Statement:
    """The 2026 stateless installation token: `ghs_<app id>_<JWT>`, ~520 characters."""
    claims = {
        "iss": v.digits(7),
        "ins": v.digits(8),
        "rep": [v.digits(9)],
        "iat": 1790000000,
        "exp": 1790003600,
        "per": {"contents": "write", "metadata": "read", "pull_requests": "write"},
        "nonce": v.chars(HEX, 48),
    }
    token = f"ghs_{v.digits(7)}_{v.jwt(claims, alg='RS256')}"
    if v.rng.random() < 0.5:
        return place(v, token, "GITHUB_TOKEN", "api.github.com")
    return f"git clone https://x-access-token:{token}@github.com/acme/infra.git", [token], "url"


def github_app_short(v: Values) -> Statement:
    return place(v, v.crc_token("ghs_"), "INSTALLATION_TOKEN", "api.github.com")


def gitlab_pat(v: Values) -> Statement:
    token = v.gitlab_routable("glpat-") if v.rng.random() < 0.5 else "glpat-" + v.chars(B64URL, 20)
    if v.rng.random() < 0.3:
        return f"git remote set-url origin https://oauth2:{token}@gitlab.com/acme/api.git", [token], "url"
    return place(v, token, "GITLAB_TOKEN", "gitlab.com")


def gitlab_prefixed(prefix: str, body: Callable[[Values], str], env: str) -> Kind:
    return lambda v: place(v, prefix + body(v), env, "gitlab.example.com")


def slack_token(v: Values) -> Statement:
    return place(v, v.pick((v.slack_bot, v.slack_user, v.slack_app))(), "SLACK_BOT_TOKEN", "slack.com")


def slack_webhook(v: Values) -> Statement:
    url = v.slack_webhook()
    syntax, text = v.pick(
        (
            ("cli", f"curl -X POST -H 'Content-type: application/json' --data '{{\"text\":\"deploy done\"}}' {url}"),
            ("yaml", f"alerting:\n  slack:\n    webhook_url: {url}"),
            ("env", f"SLACK_WEBHOOK={url}"),
        )
    )
    return text, [url], syntax


def stripe_key(v: Values) -> Statement:
    mode = v.pick(("live", "test"))
    prefix = v.pick(("sk", "rk", "pk"))
    return place(v, f"{prefix}_{mode}_51{v.chars(ALNUM, 22)}{v.chars(ALNUM, 74)}", "STRIPE_API_KEY", "api.stripe.com")


def stripe_webhook(v: Values) -> Statement:
    return place(v, "whsec_" + v.chars(ALNUM, 32), "STRIPE_WEBHOOK_SECRET", "api.stripe.com")


def google_api_key(v: Values) -> Statement:
    key = "AIza" + v.chars(B64URL, 35)
    if v.rng.random() < 0.4:
        config = {"apiKey": key, "authDomain": "acme-prod.firebaseapp.com", "projectId": "acme-prod"}
        return f"const firebaseConfig = {json.dumps(config)};", [key], "js"
    return place(v, key, "GOOGLE_API_KEY", "maps.googleapis.com")


def google_oauth(v: Values) -> Statement:
    access = "ya29.a0" + v.chars(B64URL, v.rng.randint(160, 220))
    refresh = "1//0" + v.pick("cdegh") + v.chars(B64URL, 97)
    secret = "GOCSPX-" + v.chars(B64URL, 28)
    creds = {
        "client_id": f"{v.digits(12)}-{v.chars(LOWER_ALNUM, 32)}.apps.googleusercontent.com",
        "client_secret": secret,
        "refresh_token": refresh,
        "type": "authorized_user",
    }
    syntax, text, secrets = v.pick(
        (
            ("json", json.dumps(creds, indent=2), [secret, refresh]),
            ("json", json.dumps({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}), [access]),
            ("header", f'curl -H "Authorization: Bearer {access}" https://www.googleapis.com/drive/v3/files', [access]),
            ("env", f"GOOGLE_REFRESH_TOKEN={refresh}", [refresh]),
        )
    )
    return text, secrets, syntax


def gcp_service_account(v: Values) -> Statement:
    body = v.pem_body("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ", 1190)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    key_id = v.chars(HEX, 40)
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"
    doc = {
        "type": "service_account",
        "project_id": "acme-prod",
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": "etl@acme-prod.iam.gserviceaccount.com",
    }
    return json.dumps(doc, indent=2), [key_id, *lines], "json"


def azure_storage(v: Values) -> Statement:
    key = v.random_b64(64)
    conn = (
        f"DefaultEndpointsProtocol=https;AccountName=acmelogs{v.digits(3)};AccountKey={key};"
        "EndpointSuffix=core.windows.net"
    )
    syntax, text = v.pick(
        (
            ("connstr", conn),
            ("env", f'AZURE_STORAGE_CONNECTION_STRING="{conn}"'),
            ("cli", f"az storage blob list --account-name acmelogs --account-key {key} -c raw"),
        )
    )
    return text, [key], syntax


def azure_sas(v: Values) -> Statement:
    sig = v.random_b64(32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    url = (
        f"https://acmelogs.blob.core.windows.net/raw/2026/11/02.jsonl?sv=2022-11-02&ss=b&srt=sco&sp=rl"
        f"&se=2026-12-01T00:00:00Z&spr=https&sig={sig}"
    )
    return f"azcopy copy '{url}' ./raw/", [sig], "url"


def azure_ad_secret(v: Values) -> Statement:
    return place(
        v, v.chars(ALNUM, 3) + "8Q~" + v.chars(ALNUM + "_~.-", 31), "AZURE_CLIENT_SECRET", "login.microsoftonline.com"
    )


def digitalocean(v: Values) -> Statement:
    token = v.pick(("dop_v1_", "doo_v1_", "dor_v1_")) + v.chars(HEX, 64)
    if v.rng.random() < 0.3:
        return f"doctl auth init --access-token {token}", [token], "cli"
    return place(v, token, "DIGITALOCEAN_TOKEN", "api.digitalocean.com")


def heroku(v: Values) -> Statement:
    if v.rng.random() < 0.5:
        return place(v, "HRKU-AA" + v.chars(B64URL, 58), "HEROKU_API_KEY", "api.heroku.com")
    uuid = v.uuid4()
    syntax, text = v.pick(
        (
            ("env", f"HEROKU_API_KEY={uuid}"),
            ("netrc", f"machine api.heroku.com\n  login ops@acme.example\n  password {uuid}"),
        )
    )
    return text, [uuid], syntax


def vault(v: Values) -> Statement:
    token = v.pick(
        ("hvs.CAESI" + v.chars(B64URL, 90), "hvb.AAAAAQ" + v.chars(B64URL, 140), "hvs." + v.chars(ALNUM, 24))
    )
    if v.rng.random() < 0.3:
        return f"vault login -method=token {token}", [token], "cli"
    return place(v, token, "VAULT_TOKEN", "vault.internal.example")


def terraform_cloud(v: Values) -> Statement:
    token = f"{v.chars(ALNUM, 14)}.atlasv1.{v.chars(ALNUM, 67)}"
    if v.rng.random() < 0.5:
        doc = {"credentials": {"app.terraform.io": {"token": token}}}
        return json.dumps(doc, indent=2), [token], "json"
    return place(v, token, "TFE_TOKEN", "app.terraform.io")


def docker_pat(v: Values) -> Statement:
    token = v.pick(("dckr_pat_", "dckr_oat_")) + v.chars(B64URL, 27)
    if v.rng.random() < 0.4:
        return f"echo {token} | docker login -u acmebot --password-stdin", [token], "cli"
    return place(v, token, "DOCKERHUB_TOKEN", "hub.docker.com")


def docker_config_auth(v: Values) -> Statement:
    auth = v.b64(f"acmebot:{v.password()}".encode())
    doc = {"auths": {v.pick(("ghcr.io", "registry.gitlab.com", "https://index.docker.io/v1/")): {"auth": auth}}}
    return json.dumps(doc, indent=v.pick((None, 2))), [auth], "json"


def npm_token(v: Values) -> Statement:
    token = v.crc_token("npm_")
    if v.rng.random() < 0.5:
        return f"//registry.npmjs.org/:_authToken={token}\nalways-auth=true", [token], "npmrc"
    return place(v, token, "NPM_TOKEN", "registry.npmjs.org")


def pypi_token(v: Values) -> Statement:
    token = "pypi-AgEIcHlwaS5vcmc" + v.chars(B64URL, v.rng.randint(120, 160))
    syntax, text = v.pick(
        (
            ("ini", f"[pypi]\n  username = __token__\n  password = {token}"),
            ("cli", f"twine upload -u __token__ -p {token} dist/*"),
            ("env", f"TWINE_PASSWORD={token}"),
        )
    )
    return text, [token], syntax


def huggingface(v: Values) -> Statement:
    token = v.pick(("hf_", "api_org_")) + v.chars("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 34)
    if v.rng.random() < 0.3:
        return f"huggingface-cli login --token {token}", [token], "cli"
    return place(v, token, "HF_TOKEN", "huggingface.co")


def newrelic(v: Values) -> Statement:
    token = v.pick(
        (
            "NRAK-" + v.chars(UPPER_ALNUM, 27),
            "NRII-" + v.chars(B64URL, 32),
            "NRJS-" + v.chars(HEX, 19),
            v.chars(HEX, 36) + "NRAL",
        )
    )
    return place(v, token, "NEW_RELIC_LICENSE_KEY", "api.newrelic.com")


def atlassian(v: Values) -> Statement:
    body = "ATATT3xFfGF0" + v.chars(B64URL, 174)
    token = f"{body}={zlib.crc32(body.encode()):08X}"  # Atlassian API tokens end in a CRC32 of the rest
    if v.rng.random() < 0.4:
        return f"curl -u ops@acme.example:{token} https://acme.atlassian.net/rest/api/3/myself", [token], "cli"
    return place(v, token, "JIRA_API_TOKEN", "acme.atlassian.net")


def posthog(v: Values) -> Statement:
    return place(v, v.pick(("phc_", "phx_")) + v.chars(ALNUM, 43), "POSTHOG_API_KEY", "app.posthog.com")


def salesforce(v: Values) -> Statement:
    token = f"00D{v.chars(ALNUM, 12)}!AQ{v.pick('48EM')}AQ{v.chars(ALNUM + '._', 96)}"
    if v.rng.random() < 0.5:
        return f"Access Token     {token}\nInstance Url     https://acme.my.salesforce.com", [token], "cli-output"
    return place(v, token, "SF_ACCESS_TOKEN", "acme.my.salesforce.com")


def one_password(v: Values) -> Statement:
    if v.rng.random() < 0.6:
        return place(v, v.one_password_service_token(), "OP_SERVICE_ACCOUNT_TOKEN", "my.1password.com")
    key = v.one_password_secret_key()
    return f"1Password Emergency Kit\nSecret Key: {key}", [key], "prose"


def akamai(v: Values) -> Statement:
    secret = v.random_b64(32)
    access, client = (
        f"akab-{v.chars(LOWER_ALNUM, 16)}-{v.chars(LOWER_ALNUM, 16)}",
        f"akab-{v.chars(LOWER_ALNUM, 16)}-{v.chars(LOWER_ALNUM, 16)}",
    )
    text = (
        f"[default]\nclient_secret = {secret}\nhost = akab-{v.chars(LOWER_ALNUM, 16)}.luna.akamaiapis.net\n"
        f"access_token = {access}\nclient_token = {client}"
    )
    return text, [secret, access, client], "ini"


def twilio(v: Values) -> Statement:
    sid, auth = "AC" + v.chars(HEX, 32), v.chars(HEX, 32)
    if v.rng.random() < 0.5:
        api_key, api_secret = "SK" + v.chars(HEX, 32), v.chars(ALNUM, 32)
        return f"TWILIO_API_KEY={api_key}\nTWILIO_API_SECRET={api_secret}", [api_key, api_secret], "env"
    return f'client = Client("{sid}", "{auth}")', [auth], "code"


def sendgrid(v: Values) -> Statement:
    return place(v, f"SG.{v.chars(B64URL, 22)}.{v.chars(B64URL, 43)}", "SENDGRID_API_KEY", "api.sendgrid.com")


def mailgun(v: Values) -> Statement:
    key = v.pick(("key-" + v.chars(HEX, 32), f"{v.chars(HEX, 32)}-{v.chars(HEX, 8)}-{v.chars(HEX, 8)}"))
    if v.rng.random() < 0.4:
        return f"curl -s --user 'api:{key}' https://api.mailgun.net/v3/mg.acme.example/messages", [key], "cli"
    return place(v, key, "MAILGUN_API_KEY", "api.mailgun.net")


def shopify(v: Values) -> Statement:
    token = v.pick(("shpat_", "shpca_", "shppa_", "shpss_")) + v.chars(HEX, 32)
    return place(v, token, "SHOPIFY_ACCESS_TOKEN", "acme.myshopify.com")


def datadog(v: Values) -> Statement:
    api, app = v.chars(HEX, 32), v.chars(HEX, 40)
    syntax, text, secrets = v.pick(
        (
            ("env", f"DD_API_KEY={api}\nDD_APP_KEY={app}", [api, app]),
            ("header", f'curl -X GET "https://api.datadoghq.eu/api/v1/validate" -H "DD-API-KEY: {api}"', [api]),
            ("yaml", f"datadog:\n  apiKey: {api}\n  site: datadoghq.eu", [api]),
        )
    )
    return text, secrets, syntax


def discord(v: Values) -> Statement:
    if v.rng.random() < 0.5:
        return place(v, v.discord_bot(), "DISCORD_BOT_TOKEN", "discord.com")
    url = f"https://discord.com/api/webhooks/{v.digits(19)}/{v.chars(B64URL, 68)}"
    return f"DISCORD_WEBHOOK_URL={url}", [url.rsplit("/", 2)[-1]], "env"


def telegram(v: Values) -> Statement:
    token = v.telegram_bot()
    if v.rng.random() < 0.4:
        return (
            f"curl https://api.telegram.org/bot{token}/sendMessage -d chat_id=-100{v.digits(10)} -d text=hi",
            [token],
            "url",
        )
    return place(v, token, "TELEGRAM_BOT_TOKEN", "api.telegram.org")


def openai(v: Values) -> Statement:
    return place(v, v.openai_key(), "OPENAI_API_KEY", "api.openai.com")


def anthropic(v: Values) -> Statement:
    key = v.anthropic_key()
    if v.rng.random() < 0.3:
        return (
            f"curl https://api.anthropic.com/v1/messages -H 'x-api-key: {key}' -H 'anthropic-version: 2023-06-01'",
            [key],
            "header",
        )
    return place(v, key, "ANTHROPIC_API_KEY", "api.anthropic.com")


def llm_provider(v: Values) -> Statement:
    """Keys of the LLM providers a gateway fronts, beyond OpenAI and Anthropic (the last four have no
    format of their own, so they only appear under a telling name)."""
    token, env, host = v.pick(
        (
            ("gsk_" + v.chars(ALNUM, 52), "GROQ_API_KEY", "api.groq.com"),
            ("xai-" + v.chars(ALNUM, 80), "XAI_API_KEY", "api.x.ai"),
            ("pplx-" + v.chars(ALNUM, 48), "PERPLEXITY_API_KEY", "api.perplexity.ai"),
            ("r8_" + v.chars(ALNUM, 37), "REPLICATE_API_TOKEN", "api.replicate.com"),
            ("sk-or-v1-" + v.chars(HEX, 64), "OPENROUTER_API_KEY", "openrouter.ai"),
            ("ABSK" + v.random_b64(96), "AWS_BEARER_TOKEN_BEDROCK", "bedrock-runtime.us-east-1.amazonaws.com"),
            ("fw_" + v.chars(ALNUM, 24), "FIREWORKS_API_KEY", "api.fireworks.ai"),
            ("sk-" + v.chars(HEX, 32), "DEEPSEEK_API_KEY", "api.deepseek.com"),
            (v.chars(ALNUM, 32), "MISTRAL_API_KEY", "api.mistral.ai"),
            (v.chars(ALNUM, 40), "CO_API_KEY", "api.cohere.com"),
            (v.chars(HEX, 64), "TOGETHER_API_KEY", "api.together.xyz"),
        )
    )
    return place(
        v, token, env, host, named=env in ("DEEPSEEK_API_KEY", "MISTRAL_API_KEY", "CO_API_KEY", "TOGETHER_API_KEY")
    )


def cloud_platform(v: Values) -> Statement:
    """Platform tokens: Cloudflare, Vercel, Fly.io, Netlify, Supabase, Mapbox, Okta, Algolia (Cloudflare,
    Vercel and Algolia keys have no format of their own, so they only appear under a telling name)."""
    token, env, host = v.pick(
        (
            (v.chars(B64URL, 40), "CLOUDFLARE_API_TOKEN", "api.cloudflare.com"),
            (v.chars(ALNUM, 24), "VERCEL_TOKEN", "api.vercel.com"),
            ("FlyV1 fm2_" + v.random_b64(180), "FLY_API_TOKEN", "api.fly.io"),
            ("nfp_" + v.chars(ALNUM, 40), "NETLIFY_AUTH_TOKEN", "api.netlify.com"),
            ("sbp_" + v.chars(HEX, 40), "SUPABASE_ACCESS_TOKEN", "api.supabase.com"),
            (
                "sk.eyJ1IjoiYWNtZSIsImEiOiJ" + v.chars(B64URL, 20) + "." + v.chars(B64URL, 22),
                "MAPBOX_SECRET_TOKEN",
                "api.mapbox.com",
            ),
            ("00" + v.chars(B64URL, 40), "OKTA_API_TOKEN", "acme.okta.com"),
            (v.chars(HEX, 32), "ALGOLIA_ADMIN_KEY", "acme-dsn.algolia.net"),
        )
    )
    return place(v, token, env, host, named=env in ("CLOUDFLARE_API_TOKEN", "VERCEL_TOKEN", "ALGOLIA_ADMIN_KEY"))


def misc_saas(v: Values) -> Statement:
    """Prefixed tokens from gitleaks' list beyond the big vendors."""
    token, env = v.pick(
        (
            ("dapi" + v.chars(HEX, 32), "DATABRICKS_TOKEN"),
            (f"glsa_{v.chars(ALNUM, 32)}_{v.chars(HEX, 8)}", "GRAFANA_SA_TOKEN"),
            ("lin_api_" + v.chars(ALNUM, 40), "LINEAR_API_KEY"),
            ("ntn_" + v.digits(11) + v.chars(ALNUM, 35), "NOTION_TOKEN"),
            (f"PMAK-{v.chars(HEX, 24)}-{v.chars(HEX, 34)}", "POSTMAN_API_KEY"),
            ("pul-" + v.chars(HEX, 40), "PULUMI_ACCESS_TOKEN"),
            ("dp.pt." + v.chars(ALNUM, 43), "DOPPLER_TOKEN"),
            ("pscale_tkn_" + v.chars(B64URL, 43), "PLANETSCALE_TOKEN"),
            ("squ_" + v.chars(HEX, 40), "SONAR_TOKEN"),
            ("sgp_" + v.chars(HEX, 40), "SRC_ACCESS_TOKEN"),
            ("rubygems_" + v.chars(HEX, 48), "GEM_HOST_API_KEY"),
            ("sntryu_" + v.chars(HEX, 64), "SENTRY_AUTH_TOKEN"),
            ("xkeysib-" + v.chars(HEX, 64) + "-" + v.chars(ALNUM, 16), "BREVO_API_KEY"),
            ("pnu_" + v.chars(ALNUM, 36), "PREFECT_API_KEY"),
        )
    )
    return place(v, token, env)


def age_key(v: Values) -> Statement:
    key = "AGE-SECRET-KEY-1" + v.chars("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)
    return (
        f"# created: 2026-11-02T10:14:03Z\n# public key: age1{v.chars('qpzry9x8gf2tvdw0s3jn54khce6mua7l', 58)}\n{key}",
        [key],
        "keyfile",
    )


def jwt(v: Values) -> Statement:
    token = v.jwt()
    syntax, text = v.pick(
        (
            ("header", f"Authorization: Bearer {token}"),
            ("cookie", f"Cookie: session={token}; theme=dark"),
            ("json", json.dumps({"id_token": token, "expires_in": 3600})),
            ("env", f"JWT={token}"),
            ("prose", f"decode this for me: {token}"),
        )
    )
    return text, [token], syntax


def token_concatenated(v: Values) -> Statement:
    """A token split over string literals (as people do to get past scanners): both halves must go."""
    token = v.pick((v.openai_key, v.anthropic_key, lambda: v.crc_token("ghp_"), lambda: "AIza" + v.chars(B64URL, 35)))()
    cut = v.rng.randint(10, len(token) - 10)
    head, tail = token[:cut], token[cut:]
    syntax, text = v.pick(
        (
            ("python", f'API_KEY = "{head}" + "{tail}"'),
            ("python", f'TOKEN = (\n    "{head}"\n    "{tail}"\n)'),
            ("js", f"const key = '{head}' + '{tail}';"),
            ("go", f'key := "{head}" +\n\t"{tail}"'),
            ("shell", f'KEY="{head}""{tail}"'),
        )
    )
    return text, [head, tail], syntax


# -- private keys ------------------------------------------------------------------------------

_KEY_TYPES = (
    ("RSA PRIVATE KEY", "MIIEowIBAAKCAQEA", 1190, 64),
    ("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ", 1210, 64),
    ("EC PRIVATE KEY", "MHcCAQEEI", 121, 64),
    ("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", 300, 70),
    ("ENCRYPTED PRIVATE KEY", "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI", 1270, 64),
)


def _key_lines(v: Values) -> tuple[str, list[str]]:
    label, header, n_bytes, width = v.pick(_KEY_TYPES)
    body = v.pem_body(header, n_bytes)
    return label, [body[i : i + width] for i in range(0, len(body), width)]


def private_key_pem(v: Values) -> Statement:
    label, lines = _key_lines(v)
    pem = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    syntax, text = v.pick(
        (
            ("pem", pem),
            ("cli", f"$ cat ~/.ssh/deploy_key\n{pem}"),
            ("yaml", "tls:\n  key: |\n    " + pem.replace("\n", "\n    ")),
        )
    )
    return text, lines, syntax


def private_key_pgp(v: Values) -> Statement:
    body = v.pem_body("lQOYBGV", 900)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + "\n".join(lines) + f"\n={v.chars(B64, 4)}\n"
        "-----END PGP PRIVATE KEY BLOCK-----"
    )
    return text, lines, "pgp"


def private_key_beginless(v: Values) -> Statement:
    """A key body whose BEGIN line scrolled out of the log: only prefixed base64 lines (END sometimes)."""
    label, lines = _key_lines(v)
    prefix = v.pick(("2026-11-02T10:14:03.512Z app[web.1]: ", "[debug] ", "key> ", "E1102 10:14:03.512 auth.go:88] "))
    end = f"\n{prefix}-----END {label}-----" if v.rng.random() < 0.5 else ""
    return "\n".join(prefix + line for line in lines[1:]) + end, lines[1:], "log-lines"


def private_key_concat(v: Values) -> Statement:
    label, lines = _key_lines(v)
    parts = [f'"-----BEGIN {label}-----\\n"', *(f'"{line}\\n"' for line in lines), f'"-----END {label}-----\\n"']
    joiner = v.pick((" +\n    ", "\n  + ", " \\\n  "))
    return "PRIVATE_KEY = (\n    " + joiner.join(parts) + "\n)", lines, "concat"


def private_key_json_log(v: Values) -> Statement:
    label, lines = _key_lines(v)
    pem = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"
    event = {"ts": "2026-11-02T10:14:03.512Z", "level": "debug", "msg": "loaded signing key", "key": pem}
    return json.dumps(event), lines, "json-log"


def private_key_truncated(v: Values) -> Statement:
    label, lines = _key_lines(v)
    keep = lines[: max(2, len(lines) // 2)]
    return f"-----BEGIN {label}-----\n" + "\n".join(keep) + "\n[output truncated]", keep, "pem"


def putty_key(v: Values) -> Statement:
    private = v.random_b64(48)
    text = (
        f"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n"
        f"AAAAC3NzaC1lZDI1NTE5AAAAI{v.chars(B64, 43)}\n{v.chars(B64, 20)}\nPrivate-Lines: 1\n{private}\n"
        f"Private-MAC: {v.chars(HEX, 64)}"
    )
    return text, [private], "ppk"


# -- passwords ---------------------------------------------------------------------------------


def _pw_kind(templates: tuple[tuple[str, str], ...]) -> Kind:
    """Statement templates with `{pw}` (and `{user}`), one drawn per sample."""

    def make(v: Values) -> Statement:
        syntax, template = v.pick(templates)
        pw = v.password()
        return template.format(pw=pw, user=v.user(), n=v.rng.randint(2, 9)), [pw], syntax

    return make


pw_sql = _pw_kind(
    (
        ("mysql", "CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}';"),
        ("mysql", "ALTER USER '{user}'@'localhost' IDENTIFIED WITH mysql_native_password BY '{pw}';"),
        ("mysql", "GRANT ALL ON app.* TO '{user}'@'10.0.%' IDENTIFIED BY '{pw}';"),
        ("postgres", "CREATE ROLE {user} WITH LOGIN PASSWORD '{pw}';"),
        ("postgres", "ALTER ROLE {user} PASSWORD '{pw}' VALID UNTIL 'infinity';"),
        ("mssql", "CREATE LOGIN {user} WITH PASSWORD = '{pw}', CHECK_POLICY = OFF;"),
        ("oracle", 'alter user {user} identified by "{pw}" account unlock;'),
    )
)
pw_cli_flag = _pw_kind(
    (
        ("cli", "./manage.py createsuperuser --username {user} --password {pw}"),
        ("cli", "mongosh \"mongodb://db.internal:27017\" --username {user} --password '{pw}'"),
        ("cli", "rabbitmqctl add_user {user} --password={pw}"),
        ("cli", "wget --user={user} --password={pw} https://files.internal.example/dump.sql.gz"),
        ("cli", "gpg --batch --pinentry-mode loopback --passphrase {pw} -d backup.tar.gpg"),
        ("cli", "restic -r s3:s3.amazonaws.com/bkp --password-command 'echo ok' --passphrase {pw} snapshots"),
        ("cli", "influx setup --username {user} --password {pw} --org acme --bucket raw --force"),
        ("cli", "keytool -importkeystore -srckeystore in.p12 -storepass {pw} -keypass {pw}"),
        ("cli", "redis-cli -h cache.internal -a {pw} --no-auth-warning ping"),
        ("cli", "htpasswd -b -c /etc/nginx/.htpasswd {user} {pw}"),
        ("cli", "docker login registry.internal.example -u {user} -p {pw}"),
        ("cli", "psexec \\\\build01 -u ACME\\{user} -p {pw} cmd"),
        ("cli", "net use Z: \\\\files01\\share /user:ACME\\{user} {pw}"),
        ("cli", "nmcli dev wifi connect Office-5G password {pw}"),
    )
)
pw_deploy_cli = _pw_kind(
    (
        ("cli", "helm upgrade --install api ./chart --set db.password={pw} --set db.user={user}"),
        ("cli", "terraform apply -var 'db_password={pw}' -auto-approve"),
        ("cli", "kubectl create secret generic app-db --from-literal=username={user} --from-literal=password={pw}"),
        ("cli", "docker run -d -e POSTGRES_USER={user} -e POSTGRES_PASSWORD={pw} -p 5432:5432 postgres:16"),
        ("cli", "ansible-playbook site.yml -e 'ansible_user={user} ansible_password={pw}'"),
        ("cli", "az login --service-principal -u 7f3c2a1e-app -p {pw} --tenant acme.onmicrosoft.com"),
        ("cli", "vault kv put secret/app db_password={pw}"),
    )
)
pw_openssl = _pw_kind(
    (
        ("cli", "openssl pkcs12 -in cert.p12 -nodes -passin pass:{pw} -out cert.pem"),
        ("cli", "openssl rsa -in server.key -passin pass:{pw} -out server.nopass.key"),
        ("cli", "openssl req -x509 -newkey rsa:4096 -keyout key.pem -out cert.pem -passout pass:{pw} -days 365"),
        ("cli", "openssl enc -aes-256-cbc -salt -in dump.sql -out dump.sql.enc -pass pass:{pw}"),
    )
)
pw_mysql_p = _pw_kind(
    (
        ("cli", "mysql -u{user} -p{pw} -h db.internal app < schema.sql"),
        ("cli", "mysqldump -u {user} -p{pw} --single-transaction app > app.sql"),
        ("cli", "mysqladmin -uroot -p{pw} status"),
    )
)
pw_curl_u = _pw_kind(
    (
        ("cli", "curl -u {user}:{pw} https://jenkins.internal.example/api/json"),
        ("cli", "curl --user '{user}:{pw}' -X PUT https://nexus.internal.example/repository/raw/x.tgz -T x.tgz"),
        ("cli", 'curl -s -u "{user}:{pw}" https://es.internal.example:9200/_cat/indices'),
    )
)
pw_env_var = _pw_kind(
    (
        ("cli", "PGPASSWORD={pw} psql -h db.internal -U {user} -d app -c 'select 1'"),
        ("cli", "PGPASSWORD='{pw}' pg_dump -h db.internal -U {user} app > app.sql"),
        ("cli", "MYSQL_PWD={pw} mysql -u {user} -e 'show databases'"),
        ("cli", "SSHPASS='{pw}' sshpass -e ssh {user}@build01"),
        ("cli", "sshpass -p '{pw}' scp dump.sql {user}@backup01:/srv/dumps/"),
        ("cli", "REDISCLI_AUTH={pw} redis-cli -h cache.internal info"),
    )
)
pw_id_pair = _pw_kind(
    (
        ("prose", "staging admin ID/PW: {user}/{pw}"),
        ("prose", "login with user:{user},pwd:{pw}"),
        ("prose", "creds -> user: {user} | pass: {pw}"),
        ("prose", "u/p = {user} / {pw}"),
        ("prose", "account {user}, pw {pw}, please change after first login"),
        ("prose", "Username: {user}\nPassword: {pw}"),
        ("prose", "the router is at the usual address, login {user} and the password is {pw}"),
    )
)
pw_foreign = _pw_kind(
    (
        ("de", "Benutzer: {user}\nPasswort: {pw}"),
        ("de", "Kennwort für den Testserver: {pw}"),
        ("fr", "identifiant : {user}\nmot de passe : {pw}"),
        ("es", "usuario: {user} contraseña: {pw}"),
        ("pt", "usuário {user} senha: {pw}"),
        ("ja", "ユーザー名：{user}\nパスワード：{pw}"),
        ("ru", "логин: {user}, пароль: {pw}"),
        ("nl", "wachtwoord: {pw}"),
        ("pl", "hasło do bazy: {pw}"),
        ("zh", "数据库密码：{pw}"),
        ("it", "la parola d'ordine è {pw}"),
        ("sv", "lösenord: {pw}"),
        ("ko", "비밀번호: {pw}"),
    )
)
pw_typed_decl = _pw_kind(
    (
        ("kotlin", 'val password: String = "{pw}"'),
        ("java", 'private static final String DB_PASSWORD = "{pw}";'),
        ("typescript", 'const password: string = "{pw}";'),
        ("go", 'password := "{pw}"'),
        ("rust", 'const DB_PASSWORD: &str = "{pw}";'),
        ("csharp", 'public string Password {{ get; set; }} = "{pw}";'),
        ("swift", 'let password = "{pw}"'),
        ("python", 'ADMIN_PASSWORD: Final[str] = "{pw}"'),
        ("php", "$db_pass = '{pw}';"),
        ("powershell", '$secure = ConvertTo-SecureString "{pw}" -AsPlainText -Force'),
    )
)
pw_define = _pw_kind(
    (
        ("c", '#define PASSWORD "{pw}"'),
        ("c", '#define WIFI_PASS "{pw}"'),
        ("c", '#define MQTT_PASSWORD  "{pw}"  // broker'),
        ("c", 'static const char *db_pwd = "{pw}";'),
        ("php", "define('DB_PASSWORD', '{pw}');"),
    )
)
pw_config = _pw_kind(
    (
        ("yaml", "database:\n  host: db.internal\n  username: {user}\n  password: {pw}"),
        ("yaml", 'spring:\n  datasource:\n    password: "{pw}"'),
        ("yaml", "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: {pw}"),
        ("yaml", "ansible_become_pass: {pw}"),
        ("ini", "[mysql]\nuser = {user}\npassword = {pw}"),
        ("ini", "[client]\nPassword={pw}"),
        ("toml", '[database]\nuser = "{user}"\npassword = "{pw}"'),
        ("json", '{{"db": {{"user": "{user}", "pwd": "{pw}"}}}}'),
        ("json", '{{"username": "{user}", "passwd": "{pw}", "remember": true}}'),
        ("xml", "<connection>\n  <user>{user}</user>\n  <password>{pw}</password>\n</connection>"),
        ("xml", '<add key="DbPassword" value="{pw}" />'),
        ("properties", "spring.datasource.password={pw}"),
        ("env", "DB_PASSWORD={pw}"),
        ("env", "MYSQL_ROOT_PASSWORD='{pw}'"),
        ("redis-conf", "requirepass {pw}\nmasterauth {pw}"),
        ("wpa", 'network={{\n    ssid="Office-5G"\n    psk="{pw}"\n}}'),
        ("netrc", "machine api.internal.example login {user} password {pw}"),
        ("pgpass", "db.internal:5432:app:{user}:{pw}"),
        ("s3cfg", "[default]\naccess_key = minio-{user}\nsecret_key = {pw}\nhost_base = s3.internal.example"),
    )
)
pw_code_call = _pw_kind(
    (
        ("python", 'conn = psycopg2.connect(host="db.internal", user="{user}", password="{pw}", dbname="app")'),
        ("python", 'db = mysql.connector.connect(host="mysql.internal", user="{user}", passwd="{pw}")'),
        ("python", 'r = redis.Redis(host="cache.internal", port=6379, password="{pw}")'),
        ("python", 'ssh.connect("build01", username="{user}", password="{pw}", timeout=10)'),
        ("python", 'server.login("{user}", "{pw}")'),
        ("python", 'requests.get(url, auth=("{user}", "{pw}"), timeout=30)'),
        ("js", "const pool = new Pool({{ user: '{user}', password: '{pw}', host: 'db.internal' }});"),
        ("java", 'DriverManager.getConnection("jdbc:postgresql://db.internal/app", "{user}", "{pw}");'),
        ("go", 'db, err := sql.Open("mysql", "{user}:{pw}@tcp(mysql.internal:3306)/app")'),
    )
)
pw_prose = _pw_kind(
    (
        ("prose", "the admin password is {pw} for now"),
        ("prose", "new password: {pw} (please change it)"),
        ("prose", "pw is {pw}"),
        ("prose", "I reset it, use {pw} to log in"),
        ("prose", "Password for the staging box: `{pw}`"),
    )
)


def conn_url(v: Values) -> Statement:
    pw, user = v.url_password(), v.user()
    scheme, host = v.pick(
        (
            ("postgres", "db.internal:5432/app"),
            ("postgresql+psycopg", "db.internal/app"),
            ("mysql", "mysql.internal:3306/app"),
            ("mongodb+srv", "cluster0.ab1cd.mongodb.net/app?retryWrites=true"),
            ("redis", "cache.internal:6379/0"),
            ("amqp", "mq.internal:5672/%2F"),
            ("mssql+pyodbc", "sql01.internal/app?driver=ODBC+Driver+18"),
            ("ftp", "files.internal.example/pub"),
        )
    )
    url = f"{scheme}://{'' if scheme == 'redis' and v.rng.random() < 0.5 else user}:{pw}@{host}"
    syntax, text = v.pick(
        (
            ("env", f"DATABASE_URL={url}"),
            ("code", f'engine = create_engine("{url}")'),
            ("yaml", f"broker_url: {url}"),
            ("prose", f"connect with {url}"),
        )
    )
    return text, [pw], syntax


def conn_params(v: Values) -> Statement:
    pw, user = v.url_password(), v.user()
    syntax, text = v.pick(
        (
            ("jdbc", f"jdbc:mysql://mysql.internal:3306/app?user={user}&password={pw}&useSSL=true"),
            ("jdbc", f"jdbc:postgresql://db.internal:5432/app?user={user}&password={pw}"),
            (
                "adonet",
                f"Server=tcp:acme.database.windows.net,1433;Database=app;User ID={user};Password={pw};Encrypt=True;",
            ),
            ("libpq", f"host=db.internal port=5432 dbname=app user={user} password={pw} sslmode=require"),
            ("odbc", f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=sql01;UID={user};PWD={pw}"),
        )
    )
    return text, [pw], syntax


# -- generic keys, tokens and headers -----------------------------------------------------------


def key_label(v: Values) -> Statement:
    """Free-form `<label> : value` lines in tickets and notes, any letter case."""
    value = v.pick(
        (v.chars(ALNUM, v.rng.randint(24, 40)), "-".join(v.chars(UPPER_ALNUM, 5) for _ in range(5)), v.chars(HEX, 32))
    )
    label = v.pick(
        (
            "SECRET KEY",
            "Secret key",
            "Activation key",
            "License key",
            "Product Key",
            "API key",
            "api-key",
            "Client Secret",
            "access token",
            "Auth Token",
            "Master key",
            "Encryption key",
            "Signing secret",
        )
    )
    sep = v.pick((": ", " : ", " = ", " - ", " -> ", "\t"))
    label = v.pick((label, label.upper(), label.lower()))
    return f"{label}{sep}{value}", [value], "label"


def mixed_case_assign(v: Values) -> Statement:
    value = v.pick((v.chars(ALNUM, 32), v.chars(HEX, 40), v.random_b64(24), v.chars(B64URL, 43)))
    name = v.pick(
        (
            "Api_Key",
            "APIKEY",
            "aPiKeY",
            "ClientSecret",
            "SECRET_key",
            "Access_Token",
            "authToken",
            "X_Api_Token",
            "secretKey",
            "privateKey",
            "client-secret",
            "appSecret",
        )
    )
    syntax, text = v.pick(
        (
            ("code", f'{name} = "{value}"'),
            ("yaml", f"{name}: {value}"),
            ("json", json.dumps({name: value})),
            ("js", f"const config = {{ {name}: '{value}' }};"),
            ("cli", f"--{name.lower().replace('_', '-')}={value}"),
        )
    )
    return text, [value], syntax


def framework_secret(v: Values) -> Statement:
    syntax, text, value = v.pick(
        (
            ("python", "SECRET_KEY = '{}'", "django-insecure-" + v.chars(LOWER_ALNUM + "!@#$%^&*(-_=+)", 50)),
            ("yaml", "secret_key_base: {}", v.chars(HEX, 128)),
            ("python", 'app.secret_key = "{}"', v.chars(HEX, 48)),
            ("env", "JWT_SECRET={}", v.random_b64(48)),
            ("env", "NEXTAUTH_SECRET={}", v.random_b64(32)),
            ("env", "APP_KEY=base64:{}", v.random_b64(32)),
            ("env", "SESSION_SECRET={}", v.chars(ALNUM, 40)),
        )
    )
    return text.format(value), [value], syntax


def auth_header(v: Values) -> Statement:
    kind = v.rng.randrange(5)
    if kind == 0:
        value = v.b64(f"{v.user()}:{v.password()}".encode())
        return f"Authorization: Basic {value}", [value], "basic"
    if kind == 1:
        value = "TlRMTVNTUAADAAAAGAAYAH" + v.chars(B64, v.rng.randint(200, 300)) + "=="
        return f"{v.pick(('Authorization', 'authorization', 'Proxy-Authorization'))}: NTLM {value}", [value], "ntlm"
    if kind == 2:
        value = "YIIG" + v.chars(B64, v.rng.randint(300, 400)) + "="
        return f"Authorization: Negotiate {value}", [value], "negotiate"
    if kind == 3:
        value = v.chars(ALNUM + "-._~", v.rng.randint(32, 64))
        scheme = v.pick(("Bearer", "bearer", "BEARER", "Token", "token"))
        return f"{v.pick(('Authorization', 'authorization', 'AUTHORIZATION'))}: {scheme} {value}", [value], "bearer"
    value = v.chars(ALNUM, 40)
    header = v.pick(("X-API-Key", "x-api-key", "api-key", "X-Auth-Token", "PRIVATE-TOKEN", "X-Vault-Token"))
    return f"{header}: {value}", [value], "api-key-header"


def name_value_pair(v: Values) -> Statement:
    """The secret's name and its value in separate fields: HAR headers, k8s env, Postman, Terraform."""
    value = v.pick((v.password(), v.chars(ALNUM, 40), "Bearer " + v.chars(B64URL, 48)))
    secret = value.removeprefix("Bearer ")
    syntax, text = v.pick(
        (
            (
                "har",
                json.dumps({"name": "Authorization" if value.startswith("Bearer") else "x-api-key", "value": value}),
            ),
            ("k8s-env", f'env:\n  - name: DB_PASSWORD\n    value: "{value}"\n  - name: LOG_LEVEL\n    value: info'),
            ("postman", json.dumps({"key": "password", "value": value, "type": "text"})),
            (
                "ecs",
                json.dumps({"environment": [{"name": "API_TOKEN", "value": value}, {"name": "PORT", "value": "80"}]}),
            ),
            ("terraform", f'variable "db_password" {{\n  type    = string\n  default = "{value}"\n}}'),
            ("gha", f"      - name: Login\n        with:\n          username: deploy\n          password: {value}"),
        )
    )
    return text, [secret], syntax


def cookie(v: Values) -> Statement:
    value = v.pick(
        (v.chars(LOWER_ALNUM, 32), v.chars(B64URL, 86), "s%3A" + v.chars(B64URL, 32) + "." + v.chars(B64URL, 43))
    )
    name = v.pick(("sessionid", "connect.sid", "__Secure-next-auth.session-token", "_gitlab_session", "PHPSESSID"))
    text = v.pick(
        (
            f"Cookie: {name}={value}; csrftoken={v.chars(ALNUM, 32)}",
            f"Set-Cookie: {name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax",
        )
    )
    return text, [value], "cookie"


def byte_array_key(v: Values) -> Statement:
    """A key as a byte-array literal; each half of the bytes is labelled, so a partial redaction misses."""
    raw = v.rng.randbytes(v.pick((16, 24, 32)))
    literals = [f"0x{b:02X}" if v.rng.random() < 0.5 else f"0x{b:02x}" for b in raw]
    body = ", ".join(literals)
    halves = [", ".join(literals[: len(raw) // 2]), ", ".join(literals[len(raw) // 2 :])]
    syntax, text = v.pick(
        (
            ("c", f"static const uint8_t kAesKey[] = {{{body}}};"),
            ("java", f"byte[] secretKey = new byte[] {{{body}}};"),
            ("csharp", f"private static readonly byte[] Key = {{ {body} }};"),
            ("go", f"var hmacKey = []byte{{{body}}}"),
        )
    )
    return text, halves, syntax


def k8s_secret_data(v: Values) -> Statement:
    pw, token = v.password(), v.chars(ALNUM, 32)
    text = (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-db\ntype: Opaque\ndata:\n  username: "
        f"{v.b64(v.user().encode())}\n  password: {v.b64(pw.encode())}\n  api-token: {v.b64(token.encode())}"
    )
    return text, [pw, token], "k8s-yaml"


# -- personal data -----------------------------------------------------------------------------

_FIRST = ("maria", "dtanaka", "priya.sharma", "jkowalski", "ahmed", "lucia", "oliver.b", "nkemi", "sofia_r", "hwang")
_NON_ASCII = ("jürgen", "søren", "josé", "zoë", "łukasz", "françois", "björn", "ана", "たなか", "müller")


def email(v: Values) -> Statement:
    domain = v.pick(("gmail.com", "acme-corp.com", "proton.me", "uni-heidelberg.de", "outlook.fr"))
    address = f"{v.pick(_FIRST)}{v.rng.randint(1, 99)}@{domain}"
    syntax, text = v.pick(
        (
            ("git", f"Author: Maria Example <{address}>\nDate:   Mon Nov 2 10:14:03 2026 +0100"),
            ("mail", f"From: {address}\nTo: ops@acme.example\nSubject: prod access"),
            ("json", json.dumps({"id": v.digits(6), "email": address, "plan": "pro"})),
            ("prose", f"please cc {address} on the ticket"),
            ("code", f'send_mail(to=["{address}"], subject="report")'),
            ("mailto", f'<a href="mailto:{address}">contact</a>'),
        )
    )
    return text, [address], syntax


def ip_address(v: Values) -> Statement:
    ip = v.ipv4()
    syntax, text = v.pick(
        (
            ("sshd", f"Accepted publickey for deploy from {ip} port {v.rng.randint(1024, 65535)} ssh2"),
            ("nginx", f'{ip} - - [02/Nov/2026:10:14:03 +0000] "GET /api/v1/health HTTP/1.1" 200 17'),
            ("ip-addr", f"inet {ip}/24 brd 10.0.3.255 scope global eth0"),
            ("url", f"curl http://{ip}:8080/metrics"),
            ("ssh", f"ssh -i deploy.pem ubuntu@{ip}"),
            ("json", json.dumps({"client_ip": ip, "status": 200})),
        )
    )
    return text, [ip], syntax


def ipv6_address(v: Values) -> Statement:
    ip = v.ipv6()
    syntax, text = v.pick(
        (
            ("ip-addr", f"inet6 {ip}/64 scope global dynamic"),
            ("nginx", f'{ip} - - "GET / HTTP/2" 200'),
            ("url", f"curl -g 'http://[{ip}]:8080/'"),
        )
    )
    return text, [ip], syntax


def _home_kind(template: str) -> Kind:
    def make(v: Values) -> Statement:
        name = v.pick(_FIRST)
        path = template.format(n=name, vol=v.pick(("Macintosh HD", "Data", "External")))
        tail = v.pick(("/projects/acme-api/src/main.py", "/.ssh/config", "/Downloads/report.csv", "/code/tracedrop"))
        if "\\" in template:
            tail = tail.replace("/", "\\")
        syntax, text = v.pick(
            (
                ("path", f"{path}{tail}"),
                ("prompt", f"cwd: {path}{tail}\n$ ls"),
                ("trace", f'  File "{path}{tail}", line 12, in <module>'),
                ("json", json.dumps({"cwd": path + tail, "shell": "zsh"})),
            )
        )
        return text, [name], syntax

    return make


def home_non_ascii(v: Values) -> Statement:
    """Non-ASCII user names, also as JSON writes them with ASCII escapes (`j\\u00fcrgen`)."""
    name = v.pick(_NON_ASCII)
    path = v.pick((f"/home/{name}", f"/Users/{name}", f"C:\\Users\\{name}"))
    sep = "\\" if path.startswith("C:") else "/"
    if v.rng.random() < 0.4:  # Windows paths in JSON: doubled backslashes next to `\\u` escapes
        return json.dumps({"cwd": f"C:\\Users\\{name}\\app", "shell": "pwsh"}), [name], "json-ascii"
    return f"Error: ENOENT: no such file or directory, open '{path}{sep}app{sep}.env'", [name], "path"


KINDS: dict[str, tuple[Kind, int]] = {
    # vendor credentials
    "aws-access-key": (aws_access_key, 30),
    "aws-sts-credentials": (aws_sts_json, 15),
    "github-classic-token": (github_classic, 25),
    "github-fine-grained-pat": (github_fine_grained, 20),
    "github-installation-token-long": (github_installation_long, 15),
    "github-installation-token": (github_app_short, 15),
    "gitlab-pat": (gitlab_pat, 20),
    "gitlab-deploy-token": (gitlab_prefixed("gldt-", lambda v: v.chars(B64URL, 20), "CI_DEPLOY_PASSWORD"), 15),
    "gitlab-runner-token": (
        gitlab_prefixed("glrt-", lambda v: v.pick(("t1_", "")) + v.chars(B64URL, 20), "RUNNER_TOKEN"),
        15,
    ),
    "gitlab-trigger-token": (gitlab_prefixed("glptt-", lambda v: v.chars(HEX, 40), "TRIGGER_TOKEN"), 15),
    "gitlab-scim-oauth-token": (gitlab_prefixed("glsoat-", lambda v: v.chars(B64URL, 20), "SCIM_TOKEN"), 15),
    "gitlab-ci-build-token": (
        gitlab_prefixed("glcbt-", lambda v: f"{v.chars(HEX, 2)}_{v.chars(B64URL, 20)}", "CI_JOB_TOKEN"),
        15,
    ),
    "gitlab-other-token": (
        gitlab_prefixed(
            "",
            lambda v: v.pick(("glft-", "glimt-", "glagent-", "gloas-", "glffct-")) + v.chars(B64URL, 50),
            "GITLAB_FEED_TOKEN",
        ),
        15,
    ),
    "slack-token": (slack_token, 20),
    "slack-webhook": (slack_webhook, 15),
    "stripe-key": (stripe_key, 20),
    "stripe-webhook-secret": (stripe_webhook, 12),
    "google-api-key": (google_api_key, 20),
    "google-oauth-token": (google_oauth, 20),
    "gcp-service-account": (gcp_service_account, 12),
    "azure-storage-key": (azure_storage, 15),
    "azure-sas-signature": (azure_sas, 12),
    "azure-ad-client-secret": (azure_ad_secret, 15),
    "digitalocean-token": (digitalocean, 15),
    "heroku-api-key": (heroku, 15),
    "vault-token": (vault, 15),
    "terraform-cloud-token": (terraform_cloud, 15),
    "docker-pat": (docker_pat, 15),
    "docker-config-auth": (docker_config_auth, 12),
    "npm-token": (npm_token, 15),
    "pypi-token": (pypi_token, 15),
    "huggingface-token": (huggingface, 15),
    "newrelic-key": (newrelic, 15),
    "atlassian-token": (atlassian, 15),
    "posthog-key": (posthog, 12),
    "salesforce-token": (salesforce, 12),
    "onepassword-secret": (one_password, 15),
    "akamai-edgerc": (akamai, 12),
    "twilio-credentials": (twilio, 15),
    "sendgrid-key": (sendgrid, 15),
    "mailgun-key": (mailgun, 15),
    "shopify-token": (shopify, 15),
    "datadog-key": (datadog, 15),
    "discord-token": (discord, 15),
    "telegram-bot-token": (telegram, 15),
    "openai-key": (openai, 25),
    "anthropic-key": (anthropic, 20),
    "misc-saas-token": (misc_saas, 30),
    "llm-provider-key": (llm_provider, 33),
    "cloud-platform-token": (cloud_platform, 24),
    "age-secret-key": (age_key, 10),
    "jwt": (jwt, 20),
    "token-concatenated": (token_concatenated, 15),
    # private keys
    "private-key-pem": (private_key_pem, 20),
    "private-key-pgp": (private_key_pgp, 10),
    "private-key-beginless": (private_key_beginless, 15),
    "private-key-concatenated": (private_key_concat, 12),
    "private-key-json-escaped": (private_key_json_log, 12),
    "private-key-truncated": (private_key_truncated, 12),
    "putty-private-key": (putty_key, 10),
    # passwords
    "password-sql": (pw_sql, 30),
    "password-cli-flag": (pw_cli_flag, 40),
    "password-deploy-cli": (pw_deploy_cli, 25),
    "password-openssl-pass": (pw_openssl, 20),
    "password-mysql-p": (pw_mysql_p, 20),
    "password-curl-user": (pw_curl_u, 20),
    "password-env-command": (pw_env_var, 25),
    "password-id-pair": (pw_id_pair, 30),
    "password-foreign-label": (pw_foreign, 35),
    "password-typed-declaration": (pw_typed_decl, 30),
    "password-c-define": (pw_define, 15),
    "password-config": (pw_config, 50),
    "password-prose": (pw_prose, 20),
    "password-code-call": (pw_code_call, 25),
    "name-value-pair": (name_value_pair, 25),
    "connection-string-url": (conn_url, 30),
    "connection-string-params": (conn_params, 25),
    # generic keys and tokens
    "key-label": (key_label, 30),
    "mixed-case-secret-assignment": (mixed_case_assign, 30),
    "framework-secret": (framework_secret, 20),
    "auth-header": (auth_header, 35),
    "session-cookie": (cookie, 15),
    "byte-array-key": (byte_array_key, 15),
    "k8s-secret-data": (k8s_secret_data, 12),
    # personal data
    "email": (email, 30),
    "ipv4": (ip_address, 30),
    "ipv6": (ipv6_address, 12),
    "home-linux": (_home_kind("/home/{n}"), 15),
    "home-macos": (_home_kind("/Users/{n}"), 15),
    "home-windows": (_home_kind("C:\\Users\\{n}"), 15),
    "home-wsl": (_home_kind("/mnt/c/Users/{n}"), 12),
    "home-var-home": (_home_kind("/var/home/{n}"), 10),
    "home-volumes": (_home_kind("/Volumes/{vol}/Users/{n}"), 10),
    "home-non-ascii": (home_non_ascii, 20),
}
