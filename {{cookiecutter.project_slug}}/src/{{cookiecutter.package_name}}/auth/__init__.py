"""Auth: users in a database, OAuth2 password login with JWTs, and a per-user FTNS quota."""
