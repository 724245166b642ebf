//! The operations the fence decides on and the audit log names. An enum, so a check and the
//! record it leaves cannot drift apart by a misspelt string, and the table tests can walk
//! every one of them.

/// One kind of request checked by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Lookup,
    Stat,
    Access,
    Readlink,
    Setattr,
    /// A new file, by create(2) or mknod(2).
    Create,
    Mkdir,
    Symlink,
    Unlink,
    Rmdir,
    Link,
    Rename,
    Open,
    /// Listing a directory.
    List,
    Setxattr,
    Removexattr,
    Getxattr,
    Listxattr,
}

impl Op {
    /// The name in audit records (FORMAT.md, "Audit records": the `op` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Stat => "stat",
            Op::Access => "access",
            Op::Readlink => "readlink",
            Op::Setattr => "setattr",
            Op::Create => "create",
            Op::Mkdir => "mkdir",
            Op::Symlink => "symlink",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Link => "link",
            Op::Rename => "rename",
            Op::Open => "open",
            Op::List => "list",
            Op::Setxattr => "setxattr",
            Op::Removexattr => "removexattr",
            Op::Getxattr => "getxattr",
            Op::Listxattr => "listxattr",
        }
    }

    /// Whether an allowed request of this kind is recorded too (refusals always are). Lookups,
    /// stats and reads of names or attributes are not: they would drown the log.
    pub fn audited_when_allowed(self) -> bool {
        !matches!(
            self,
            Op::Lookup | Op::Stat | Op::Access | Op::Readlink | Op::Getxattr | Op::Listxattr
        )
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
