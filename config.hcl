# gateway configuration — `make run` uses this file.
# Relative paths resolve against this file's folder.

gateway {
  state_dir        = ".gateway"       # lock + PID file, session store
  plugin_dir       = "bin/plugins"    # gateway-plugin-NAME binaries
  admin            = "127.0.0.1:8787" # /healthz /readyz /v1/status /metrics
  log_level        = "info"
  log_format       = "text"
  shutdown_timeout = "30s"
}

# The embedded default: no network, no key. Replies "echo: TEXT".
provider "echo" {
  type = "echo"
}

# Any OpenAI-compatible chat completions API (OpenAI, OpenRouter, Ollama,
# vLLM, llama.cpp server). Switch a session to it with /model openai/MODEL.
provider "openai" {
  type     = "openai"
  base_url = env("OPENAI_BASE_URL", "https://api.openai.com/v1")
  api_key  = env("OPENAI_API_KEY", "")
}

agent {
  model         = "echo/echo"
  system_prompt = "You are a helpful assistant."
  history_limit = 40
  limits {
    messages_per_minute = 20      # per user per platform; 0: no limit
    tokens_per_day      = 200000  # provider-reported tokens per user per UTC day
  }
}

cache {
  max_agents = 128
  idle_ttl   = "1h"
}

# The session store: by default a bbolt file in state_dir, each reply sent
# only after its turn is fsynced. Several hosts share PostgreSQL instead and
# lease the platforms among themselves (README: "Running on several hosts").
# store {
#   type = "postgres"                     # default "bolt"
#   dsn  = env("GATEWAY_DATABASE_URL")    # sensitive
#   sync = "always"                       # bolt only: or a duration, e.g. "100ms"
# }
# cluster {
#   name      = "prod"
#   lease_ttl = "10s"
# }

platform "web" {
  plugin = "http"
  config {
    listen = "127.0.0.1:8788"
  }
}

platform "discord" {
  plugin  = "discord"
  enabled = env("DISCORD_TOKEN", "") != ""
  access {
    dm            = "pairing"  # strangers get a code: `gateway pairing approve CODE`
    allowed_users = []         # Discord user ids answered without pairing
  }
  config {
    token           = env("DISCORD_TOKEN", "")
    require_mention = true
  }
  restart {
    initial_backoff = "1s"
    max_backoff     = "2m"
  }
}

platform "matrix" {
  plugin  = "matrix"
  enabled = env("MATRIX_TOKEN", "") != ""
  config {
    homeserver      = env("MATRIX_HOMESERVER", "https://matrix.example.org")
    access_token    = env("MATRIX_TOKEN", "")
    require_mention = true  # in rooms with more than two members: answer only mentions
    auto_join       = true  # accept invites (only from allowed_users when that is set)
    allowed_users   = []    # user ids (@alice:example.org); empty allows all
    allowed_rooms   = []    # room ids; empty allows all
  }
}

# Telegram (long polling). See plugins/telegram/README.md for BotFather,
# privacy mode in groups and how to find user and chat ids.
platform "telegram" {
  plugin  = "telegram"
  enabled = env("TELEGRAM_TOKEN", "") != ""
  config {
    token           = env("TELEGRAM_TOKEN", "")  # sensitive; from @BotFather
    api_url         = "https://api.telegram.org" # requests go to {api_url}/bot{token}/{method}
    require_mention = true  # in groups: answer only @mentions, replies to the bot, and /commands
    allowed_users   = []    # user ids (strings); empty allows all
    allowed_chats   = []    # chat ids (strings, groups are negative); empty allows all
    poll_timeout    = "30s" # getUpdates long-poll timeout
  }
}

# Slack over Socket Mode (no public URL needed); see plugins/slack/README.md.
platform "slack" {
  plugin  = "slack"
  enabled = env("SLACK_BOT_TOKEN", "") != ""
  config {
    bot_token        = env("SLACK_BOT_TOKEN", "")   # xoxb-…, sensitive
    app_token        = env("SLACK_APP_TOKEN", "")   # xapp-… with connections:write, sensitive
    api_url          = "https://slack.com/api/"     # Web API base; Socket Mode URL comes from apps.connections.open
    require_mention  = true    # in channels: answer only @mentions (app_mention); DMs always
    reply_in_thread  = true    # answer a channel message in its thread
    allowed_users    = []      # user ids; empty allows all
    allowed_channels = []      # channel ids; empty allows all
  }
  restart {
    initial_backoff = "1s"
    max_backoff     = "2m"
  }
}
