"""The X (Twitter) channel, through tweepy (API v2): posts, threads, native polls, mentions.

- ``client.XApi``: tweepy's Client on the X channel's own small executor; errors classified.
- ``account.XAccount``: the only way to write to X; X's automation rules are checked first.
- ``channel.XChannel``: the account as a ``bots.channel.Channel`` for the delivery worker.
- ``ticks``: the scheduler's mention reading (and replies) and poll read-back.
- ``setup``: X bot rows and their credentials: the settings' account ("default") and those
  added with `nalgae x account add` (campaigns.x.accounts), each opened as its own client.
- ``tokens``: OAuth 2.0 access tokens refreshed ahead of expiry, by one process at a time.
"""
