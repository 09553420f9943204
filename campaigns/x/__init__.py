"""The X (Twitter) rules: mention intake, automation policy, posting, settings and text weight."""
