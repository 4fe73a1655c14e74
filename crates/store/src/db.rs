//! The one database interface the store's modules use, over SQLite (rusqlite) and PostgreSQL
//! (the synchronous `postgres` client): every query is written once, with `?1`..`?N`
//! placeholders, and runs on both. Values cross it as [`Value`]s (NULL, a 64-bit integer,
//! text or bytes: what both databases store for us), rows come back whole as [`Row`]s.
//!
//! The API mirrors the part of rusqlite the store used before PostgreSQL (`execute`,
//! `query_row`, `prepare` + `query_map`, `.optional()`, transactions), so a module reads the
//! same on either database. Where the dialects differ, [`Db::dialect`] tells the caller which
//! text to send; the differences are listed where they are handled (`Store::migrate`, the
//! migrations' [`postgres_ddl`], `backup_to`, `external_change_counter`).
//!
//! The `postgres` client drives tokio-postgres on a current-thread tokio runtime of its own
//! and blocks on it, so it panics ("Cannot start a runtime from within a runtime") when called
//! from a thread that runs a tokio runtime, `spawn_blocking` threads included. The server
//! therefore opens a PostgreSQL store and calls it only on plain std threads: the store
//! thread of `StoreHandle` and the CLI commands, never inside `block_on`.

use std::cell::RefCell;
use std::ops::Deref;

/// A database error, whichever database raised it.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// SQLite refused the operation.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL (or the connection to it) refused the operation.
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    /// A query that must return a row returned none.
    #[error("the query returned no rows")]
    NoRows,
    /// A column's value does not have the type the store reads it as.
    #[error("column {column}: {problem}")]
    Column {
        /// Position of the column in the row, from 0.
        column: usize,
        /// What was found instead.
        problem: String,
    },
    /// A value cannot be sent to the database (a number out of range).
    #[error("parameter {0} cannot be stored: {1}")]
    Parameter(usize, String),
    /// The operation exists on SQLite only.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// postgres::Error's own Display says only "db error" for a server's error: name the server's
/// message, and its detail where it gave one.
fn postgres_message(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => err.to_string(),
    }
}

/// The result of a database operation.
pub(crate) type Result<T, E = DatabaseError> = std::result::Result<T, E>;

/// One value in a column or a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

/// A Rust value that can be sent as a parameter.
pub(crate) trait ToValue {
    fn to_value(&self) -> Result<Value, String>;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Result<Value, String> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Result<Value, String> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(Value::Null),
        }
    }
}

macro_rules! integer_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Result<Value, String> {
                i64::try_from(*self)
                    .map(Value::Integer)
                    .map_err(|_| format!("{self} does not fit a 64-bit signed integer"))
            }
        }
    )*};
}
integer_to_value!(i64, i32, i16, i8, u64, u32, u16, u8, usize);

impl ToValue for bool {
    fn to_value(&self) -> Result<Value, String> {
        // Both databases keep our flags as 0/1 integers (SQLite has no boolean type).
        Ok(Value::Integer(i64::from(*self)))
    }
}

impl ToValue for str {
    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Text(self.to_owned()))
    }
}

impl ToValue for String {
    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Text(self.clone()))
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Blob(self.to_vec()))
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Blob(self.clone()))
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Blob(self.to_vec()))
    }
}

/// A Rust value a column can be read as.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn wrong(expected: &str, found: &Value) -> String {
    format!("expected {expected}, found {}", found.kind())
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

macro_rules! integer_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, String> {
                match value {
                    Value::Integer(i) => <$t>::try_from(*i)
                        .map_err(|_| format!("{i} is out of range for {}", stringify!($t))),
                    v => Err(wrong("an integer", v)),
                }
            }
        }
    )*};
}
integer_from_value!(i64, i32, i16, u64, u32, u16, u8, usize);

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Integer(i) => Ok(*i != 0),
            v => Err(wrong("a 0/1 flag", v)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            v => Err(wrong("text", v)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            v => Err(wrong("bytes", v)),
        }
    }
}

impl<const N: usize> FromValue for [u8; N] {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => b
                .as_slice()
                .try_into()
                .map_err(|_| format!("expected {N} bytes, found {}", b.len())),
            v => Err(wrong("bytes", v)),
        }
    }
}

/// The parameters of one statement.
pub(crate) trait Params {
    fn values(&self) -> Result<Vec<Value>, DatabaseError>;
}

fn collect_values<'a>(
    items: impl Iterator<Item = &'a dyn ToValue>,
) -> Result<Vec<Value>, DatabaseError> {
    items
        .enumerate()
        .map(|(i, v)| {
            v.to_value()
                .map_err(|problem| DatabaseError::Parameter(i + 1, problem))
        })
        .collect()
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Result<Vec<Value>, DatabaseError> {
        collect_values(self.iter().copied())
    }
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Result<Vec<Value>, DatabaseError> {
        Ok(Vec::new())
    }
}

impl Params for () {
    fn values(&self) -> Result<Vec<Value>, DatabaseError> {
        Ok(Vec::new())
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Result<Vec<Value>, DatabaseError> {
                collect_values(self.iter().map(|v| v as &dyn ToValue))
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8);

/// Parameters of different types, as rusqlite's `params!`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::db::ToValue),*] as &[&dyn $crate::db::ToValue]
    };
}
pub(crate) use params;

/// One row of a result, read whole.
pub(crate) struct Row<'a> {
    values: &'a [Value],
}

/// A column position, as rusqlite's `RowIndex` (only positions: the store names no columns).
pub(crate) trait ColumnIndex {
    fn position(self) -> usize;
}

impl ColumnIndex for usize {
    fn position(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// The value of column `index`, read as a `T`.
    pub(crate) fn get<I: ColumnIndex, T: FromValue>(&self, index: I) -> Result<T, DatabaseError> {
        let column = index.position();
        let value = self
            .values
            .get(column)
            .ok_or_else(|| DatabaseError::Column {
                column,
                problem: format!("the row has only {} columns", self.values.len()),
            })?;
        T::from_value(value).map_err(|problem| DatabaseError::Column { column, problem })
    }
}

/// `.optional()` on a single-row result, as rusqlite's `OptionalExtension`.
pub(crate) trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, DatabaseError>;
}

impl<T> OptionalExtension<T> for Result<T, DatabaseError> {
    fn optional(self) -> Result<Option<T>, DatabaseError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DatabaseError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Which SQL dialect a [`Db`] speaks, for the statements that must differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// An open database connection.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    // Boxed: its connection settings make it several times the size of SQLite's handle.
    Postgres(Box<PostgresConnection>),
}

/// A PostgreSQL connection that comes back after the server dropped it (a restart, a
/// failover, an idle timeout): the call that finds it broken fails, the next one connects
/// again. Never inside a transaction: statements after a reconnect would run outside it
/// and its COMMIT would commit only half; the transaction's own calls fail instead.
pub(crate) struct PostgresConnection {
    /// `postgres::Client` needs `&mut` for every call while the store's API is `&self` (the
    /// store is owned by one thread, see the module docs): a RefCell, held only during one call.
    client: RefCell<postgres::Client>,
    config: postgres::Config,
    in_transaction: std::cell::Cell<bool>,
}

impl PostgresConnection {
    pub(crate) fn connect(config: postgres::Config) -> Result<Self, DatabaseError> {
        Ok(Self {
            client: RefCell::new(config.connect(postgres::NoTls)?),
            config,
            in_transaction: std::cell::Cell::new(false),
        })
    }

    /// The client, connected again first if the server dropped the connection.
    fn client(&self) -> Result<std::cell::RefMut<'_, postgres::Client>, DatabaseError> {
        let mut client = self.client.borrow_mut();
        if client.is_closed() && !self.in_transaction.get() {
            *client = self.config.connect(postgres::NoTls)?;
        }
        Ok(client)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            // The server infers each parameter's type from where it is used: our integer
            // columns are BIGINT, but literals, LIMIT and comparisons can make it another width.
            Value::Integer(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// `?1`..`?N` (and bare `?`, numbered in order) to PostgreSQL's `$1`..`$N`, leaving string
/// literals and quoted names alone.
pub(crate) fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut next_bare = 1;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    out.push_str(&next_bare.to_string());
                    next_bare += 1;
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

fn sqlite_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value],
) -> Result<Vec<Vec<Value>>, DatabaseError> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(r) => {
                    return Err(DatabaseError::Column {
                        column: i,
                        problem: format!("a floating-point value ({r}) where none is stored"),
                    });
                }
                ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).map_err(|_| {
                    DatabaseError::Column {
                        column: i,
                        problem: "text that is not UTF-8".into(),
                    }
                })?),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    Ok(out)
}

fn postgres_params(values: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

fn postgres_row(row: &postgres::Row) -> Result<Vec<Value>, DatabaseError> {
    use postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|n| Value::Integer(n.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|n| Value::Integer(n.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|b| Value::Integer(b.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            _ => {
                return Err(DatabaseError::Column {
                    column: i,
                    problem: format!("type {ty} is not one the store reads (cast it to BIGINT)"),
                });
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(values)
}

impl Db {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// All rows of a query, each read whole.
    fn rows(&self, sql: &str, params: impl Params) -> Result<Vec<Vec<Value>>, DatabaseError> {
        let values = params.values()?;
        match self {
            Db::Sqlite(conn) => sqlite_rows(conn, sql, &values),
            Db::Postgres(connection) => {
                let rows = connection.client()?.query(
                    postgres_placeholders(sql).as_str(),
                    &postgres_params(&values),
                )?;
                rows.iter().map(postgres_row).collect()
            }
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: impl Params) -> Result<usize, DatabaseError> {
        let values = params.values()?;
        match self {
            Db::Sqlite(conn) => Ok(conn
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values.iter()))?),
            Db::Postgres(connection) => {
                let changed = connection.client()?.execute(
                    postgres_placeholders(sql).as_str(),
                    &postgres_params(&values),
                )?;
                // A count past usize (only on a 32-bit target) is still "many rows".
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs several statements without parameters (schema changes).
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), DatabaseError> {
        match self {
            Db::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Postgres(connection) => Ok(connection.client()?.batch_execute(sql)?),
        }
    }

    /// The first row of a query, read by `f`; [`DatabaseError::NoRows`] if there is none.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T, DatabaseError>,
    ) -> Result<T, DatabaseError> {
        let rows = self.rows(sql, params)?;
        let first = rows.first().ok_or(DatabaseError::NoRows)?;
        f(&Row { values: first })
    }

    /// A statement to run several times, as rusqlite's `prepare`.
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement<'_>, DatabaseError> {
        Ok(Statement {
            db: self,
            sql: sql.to_owned(),
        })
    }

    /// Starts a transaction: it is rolled back when dropped without [`Transaction::commit`].
    /// Statements in between go through the same connection, so through the transaction.
    pub(crate) fn transaction(&self) -> Result<Transaction<'_>, DatabaseError> {
        self.execute_batch("BEGIN")?;
        self.set_in_transaction(true);
        Ok(Transaction {
            db: self,
            open: true,
        })
    }

    fn set_in_transaction(&self, open: bool) {
        if let Db::Postgres(connection) = self {
            connection.in_transaction.set(open);
        }
    }
}

/// A statement of [`Db::prepare`]. SQLite caches the prepared statement by its text; the
/// PostgreSQL client prepares it per call (the store's loops are short).
pub(crate) struct Statement<'a> {
    db: &'a Db,
    sql: String,
}

impl Statement<'_> {
    pub(crate) fn execute(&mut self, params: impl Params) -> Result<usize, DatabaseError> {
        self.db.execute(&self.sql, params)
    }

    /// Every row, read by `f`; an iterator of results as rusqlite's `query_map`.
    pub(crate) fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T, DatabaseError>,
    ) -> Result<std::vec::IntoIter<Result<T, DatabaseError>>, DatabaseError> {
        let rows = self.db.rows(&self.sql, params)?;
        Ok(rows
            .iter()
            .map(|values| f(&Row { values }))
            .collect::<Vec<_>>()
            .into_iter())
    }
}

/// An open transaction of [`Db::transaction`].
pub(crate) struct Transaction<'a> {
    db: &'a Db,
    open: bool,
}

impl Transaction<'_> {
    pub(crate) fn commit(mut self) -> Result<(), DatabaseError> {
        self.open = false;
        let committed = self.db.execute_batch("COMMIT");
        self.db.set_in_transaction(false);
        committed
    }
}

impl Deref for Transaction<'_> {
    type Target = Db;

    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to tell anyone: the error that ended the transaction early is on its
            // way to the caller, and a failed ROLLBACK leaves the connection's own state.
            let _ = self.db.execute_batch("ROLLBACK");
            self.db.set_in_transaction(false);
        }
    }
}

/// A migration written for SQLite as PostgreSQL DDL. The store's schema uses only a handful
/// of SQLite's words, each with one PostgreSQL equivalent:
/// - `INTEGER PRIMARY KEY [AUTOINCREMENT]` (a rowid: numbered by the database when not given)
///   becomes `BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY`;
/// - `INTEGER` becomes `BIGINT`: SQLite's integers are 64-bit, PostgreSQL's INTEGER is not;
/// - `BLOB` becomes `BYTEA`;
/// - `TEXT` becomes `TEXT COLLATE "C"`: SQLite compares and sorts text by its bytes (which is
///   Rust's `str` order), PostgreSQL by the database's locale unless told otherwise;
/// - ` WITHOUT ROWID` (a SQLite storage choice) is dropped.
///
/// Words are replaced whole and in upper case only, so a column named `text` stays.
pub(crate) fn postgres_ddl(sqlite: &str) -> String {
    let phrased = sqlite
        .replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace(
            "INTEGER PRIMARY KEY",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace(" WITHOUT ROWID", "");
    let mut out = String::with_capacity(phrased.len() + 64);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(match word.as_str() {
            "INTEGER" => "BIGINT",
            "BLOB" => "BYTEA",
            "TEXT" => "TEXT COLLATE \"C\"",
            w => w,
        });
        word.clear();
    };
    for c in phrased.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            postgres_placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND \"d?\" = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND \"d?\" = $12"
        );
        assert_eq!(
            postgres_placeholders("VALUES (?, 'it''s ?', ?)"),
            "VALUES ($1, 'it''s ?', $2)"
        );
    }

    #[test]
    fn sqlite_ddl_becomes_postgres_ddl_word_by_word() {
        assert_eq!(
            postgres_ddl(
                "CREATE TABLE f (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, \
                 b BLOB, n INTEGER, v INTEGER PRIMARY KEY) WITHOUT ROWID;"
            ),
            "CREATE TABLE f (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
             text TEXT COLLATE \"C\" NOT NULL, b BYTEA, n BIGINT, \
             v BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);"
        );
    }
}
