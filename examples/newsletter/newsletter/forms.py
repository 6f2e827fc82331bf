"""Flask-WTF forms (each carries its CSRF token; CSRFProtect checks every POST)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired()])


class CampaignForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    list_id = SelectField("Send to list", coerce=int, validators=[DataRequired()])
    subject = StringField("Subject", validators=[DataRequired(), Length(max=200)])
    from_address = StringField("From", validators=[DataRequired(), Length(max=320)])
    html = TextAreaField("HTML body")
    text = TextAreaField("Text body")

    def validate(self, extra_validators: object = None) -> bool:
        if not super().validate(extra_validators):
            return False
        if not (self.html.data or self.text.data):
            self.text.errors.append("Write an HTML or a text body (or both).")
            return False
        return True
