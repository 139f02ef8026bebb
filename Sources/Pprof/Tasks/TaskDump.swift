/// The Swift tasks of the process that have waited longest: the `tasks?longest=N` view (issue 14).
///
/// The runtime keeps no time of a task's suspension, so each task carries an upper bound: the time
/// since it was created or last enqueued on the global or main executor (PprofHooks stamps both).
/// A task cannot have been suspended longer. The bound is tight for a task that resumes there (a
/// request's nonisolated async code, continuations, sleeps, child results); for a task that resumes
/// onto an actor it can reach back to the task's creation. docs/tasks.md has the details.
public enum TaskDump {
    /// Writes the `limit` suspended tasks with the largest bounds, largest first, one block each as
    /// in `goroutine?debug=2`, after a line saying how many tasks are suspended in all. Without
    /// PprofHooks, or on a runtime whose task layout is unknown, writes why there are no tasks.
    /// Throws `PprofError.invalidArgument` for a limit below 1, or what the sink throws.
    public static func writeLongestSuspended(_ limit: Int, to sink: some ProfileSink) throws {
        guard limit > 0 else { throw PprofError.invalidArgument("the number of tasks must be positive, not \(limit)") }
        switch ThreadProfiles.suspendedTasks() {
        case .untracked:
            try sink.write("tasks unavailable: PprofHooks is not linked or no task was created yet\n")
        case .unavailable(let reason):
            try sink.write(reason + "\n")
        case .listed(let tasks):
            let longest = tasks.sorted(by: ThreadProfiles.suspendedLonger).prefix(limit)
            try sink.write(
                "\(tasks.count) tasks suspended; the \(longest.count) suspended longest, each with an upper bound"
                    + " of its suspension (the time since it was created or last enqueued on the global or main"
                    + " executor):\n"
            )
            try ThreadProfiles.writeTaskDump(Array(longest), to: sink, longestFirst: true)
        }
    }
}
