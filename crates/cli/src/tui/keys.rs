//! Which key, paste or mouse event means which [`Action`].
//!
//! The one place that knows crossterm's event types, so the model deals only in intentions
//! ("scroll up", "delete word") and the bindings are listed, and tested, in one table.

use crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};

use super::model::{Action, WHEEL_LINES};

/// Translates one terminal event; `None` for events the chat ignores (key releases, focus,
/// resizes, which only need a redraw, and unbound keys).
pub fn action_for(event: &TermEvent) -> Option<Action> {
    match event {
        TermEvent::Key(key) => key_action(key),
        TermEvent::Paste(text) => Some(Action::Paste(text.clone())),
        TermEvent::Mouse(mouse) => mouse_action(mouse),
        _ => None,
    }
}

fn key_action(key: &KeyEvent) -> Option<Action> {
    // With the kitty keyboard protocol a terminal also reports releases; act on presses only.
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let action = match key.code {
        KeyCode::Char('c') if ctrl => Action::Interrupt,
        KeyCode::Char('d') if ctrl => Action::EndOfInput,
        KeyCode::Char('a') if ctrl => Action::Home,
        KeyCode::Char('e') if ctrl => Action::End,
        KeyCode::Char('b') if ctrl => Action::Left,
        KeyCode::Char('f') if ctrl => Action::Right,
        KeyCode::Char('w') if ctrl => Action::DeleteWord,
        KeyCode::Char('u') if ctrl => Action::DeleteToStart,
        KeyCode::Char('k') if ctrl => Action::DeleteToEnd,
        KeyCode::Char('p') if ctrl => Action::HistoryUp,
        KeyCode::Char('n') if ctrl => Action::HistoryDown,
        KeyCode::Char('b') if alt => Action::WordLeft,
        KeyCode::Char('f') if alt => Action::WordRight,
        KeyCode::Char(_) if ctrl || alt => return None,
        KeyCode::Char(c) => Action::Char(c),
        KeyCode::Enter => Action::Submit,
        KeyCode::Backspace if ctrl || alt => Action::DeleteWord,
        KeyCode::Backspace => Action::Backspace,
        KeyCode::Delete => Action::Delete,
        KeyCode::Left if ctrl || alt => Action::WordLeft,
        KeyCode::Right if ctrl || alt => Action::WordRight,
        KeyCode::Left => Action::Left,
        KeyCode::Right => Action::Right,
        KeyCode::Home => Action::Home,
        KeyCode::End if ctrl => Action::ScrollToBottom,
        KeyCode::End => Action::End,
        KeyCode::Up => Action::HistoryUp,
        KeyCode::Down => Action::HistoryDown,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Tab => Action::Char('\t'),
        _ => return None,
    };
    Some(action)
}

fn mouse_action(mouse: &MouseEvent) -> Option<Action> {
    match mouse.kind {
        MouseEventKind::ScrollUp => Some(Action::ScrollUp(WHEEL_LINES)),
        MouseEventKind::ScrollDown => Some(Action::ScrollDown(WHEEL_LINES)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventState;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> TermEvent {
        TermEvent::Key(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn typing_editing_and_sending() {
        let none = KeyModifiers::NONE;
        assert_eq!(
            action_for(&key(KeyCode::Char('é'), none)),
            Some(Action::Char('é'))
        );
        assert_eq!(
            action_for(&key(KeyCode::Char('A'), KeyModifiers::SHIFT)),
            Some(Action::Char('A'))
        );
        assert_eq!(action_for(&key(KeyCode::Enter, none)), Some(Action::Submit));
        assert_eq!(
            action_for(&key(KeyCode::Backspace, none)),
            Some(Action::Backspace)
        );
        assert_eq!(
            action_for(&key(KeyCode::Delete, none)),
            Some(Action::Delete)
        );
        assert_eq!(action_for(&key(KeyCode::Home, none)), Some(Action::Home));
        assert_eq!(action_for(&key(KeyCode::End, none)), Some(Action::End));
        assert_eq!(action_for(&key(KeyCode::Up, none)), Some(Action::HistoryUp));
        assert_eq!(
            action_for(&key(KeyCode::Down, none)),
            Some(Action::HistoryDown)
        );
        assert_eq!(
            action_for(&key(KeyCode::Left, KeyModifiers::CONTROL)),
            Some(Action::WordLeft)
        );
        assert_eq!(
            action_for(&key(KeyCode::Char('w'), KeyModifiers::CONTROL)),
            Some(Action::DeleteWord)
        );
    }

    #[test]
    fn ctrl_c_and_ctrl_d_leave_and_other_chords_type_nothing() {
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(
            action_for(&key(KeyCode::Char('c'), ctrl)),
            Some(Action::Interrupt)
        );
        assert_eq!(
            action_for(&key(KeyCode::Char('d'), ctrl)),
            Some(Action::EndOfInput)
        );
        assert_eq!(action_for(&key(KeyCode::Char('x'), ctrl)), None);
        assert_eq!(
            action_for(&key(KeyCode::Char('x'), KeyModifiers::ALT)),
            None
        );
    }

    #[test]
    fn releases_are_ignored() {
        let release = TermEvent::Key(KeyEvent {
            code: KeyCode::Char('a'),
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
        });
        assert_eq!(action_for(&release), None);
    }

    #[test]
    fn paging_wheel_and_paste() {
        assert_eq!(
            action_for(&key(KeyCode::PageUp, KeyModifiers::NONE)),
            Some(Action::PageUp)
        );
        assert_eq!(
            action_for(&key(KeyCode::PageDown, KeyModifiers::NONE)),
            Some(Action::PageDown)
        );
        let wheel = |kind| {
            TermEvent::Mouse(MouseEvent {
                kind,
                column: 0,
                row: 0,
                modifiers: KeyModifiers::NONE,
            })
        };
        assert_eq!(
            action_for(&wheel(MouseEventKind::ScrollUp)),
            Some(Action::ScrollUp(WHEEL_LINES))
        );
        assert_eq!(
            action_for(&wheel(MouseEventKind::ScrollDown)),
            Some(Action::ScrollDown(WHEEL_LINES))
        );
        assert_eq!(
            action_for(&TermEvent::Paste("a\nb".into())),
            Some(Action::Paste("a\nb".into()))
        );
        assert_eq!(action_for(&TermEvent::Resize(10, 10)), None);
    }
}
